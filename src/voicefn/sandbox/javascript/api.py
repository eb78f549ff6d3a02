"""The JavaScript sandbox's public types: what a caller passes in and what a job returns.

They are the types both sandboxes share (:mod:`voicefn.sandbox.common`); ``Limits`` only says
what ``memory_mb`` means here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import common
from ..common import Egress, ErrorKind, Mode, Outcome, SandboxUnavailable

__all__ = ["Egress", "ErrorKind", "Limits", "Mode", "Outcome", "SandboxUnavailable", "unavailable"]

_UNSAFE_HINT = (
    'mode="unsafe-process" runs Deno without namespaces, but it gives NO isolation between '
    "tenants (one tenant's code that gets past Deno's permissions can read another tenant's "
    "live memory through /proc/<pid>/mem and kill its calls): use it only for one trusted "
    "tenant, never for a service with more than one workspace."
)


def unavailable(what: str) -> SandboxUnavailable:
    """The :class:`SandboxUnavailable` to raise: ``what`` is missing (and how to get it), and
    ``mode="unsafe-process"`` is the explicit weaker alternative."""
    return SandboxUnavailable(f"JavaScript sandbox unavailable: {what} {_UNSAFE_HINT}", what=what)


@dataclass(frozen=True)
class Limits(common.Limits):
    """Per-job limits. ``memory_mb`` is the job's V8 heap; the tenant's Deno process (host,
    pre-warmed Workers, off-heap buffers) is capped at ``memory_mb`` + 384 MiB by its cgroup."""

    timeout_s: float = 10.0
