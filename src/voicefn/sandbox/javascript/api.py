"""The JavaScript sandbox's public types: what a caller passes in and what a job returns."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Egress", "ErrorKind", "Limits", "Mode", "Outcome", "SandboxUnavailable"]

Egress = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Mode = Literal["isolated", "unsafe-process"]
ErrorKind = Literal[
    "timeout",
    "memory",
    "crashed",
    "invalid_output",
    "exception",
    "too_many_requests",
    "unavailable",
]

_UNSAFE_HINT = (
    'Or pass mode="unsafe-process" to JavaScriptSandbox to run Deno without namespaces '
    "(an explicit, weaker choice: Worker permissions only, and every Outcome says so)."
)


class SandboxUnavailable(RuntimeError):
    """The isolated JavaScript sandbox cannot run on this host; the message says what is missing,
    how to get it, and that ``mode="unsafe-process"`` is the explicit weaker alternative."""

    def __init__(self, what: str) -> None:
        super().__init__(f"JavaScript sandbox unavailable: {what} {_UNSAFE_HINT}")
        self.what = what


@dataclass(frozen=True)
class Limits:
    """Per-job limits. ``memory_mb`` is the job's V8 heap; the tenant's Deno process (host,
    spare worker, off-heap buffers) is capped at ``memory_mb`` + 192 MiB by its cgroup."""

    timeout_s: float = 10.0
    memory_mb: int = 256
    max_output_bytes: int = 1 << 20
    max_log_lines: int = 200
    max_http_requests: int = 20

    def __post_init__(self) -> None:
        t = self.timeout_s
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
            raise ValueError(f"Limits.timeout_s must be a positive number, not {t!r}")
        for name in ("memory_mb", "max_output_bytes", "max_log_lines", "max_http_requests"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Limits.{name} must be a non-negative int, not {value!r}")
        if self.memory_mb < 16:
            raise ValueError(f"Limits.memory_mb must be at least 16, not {self.memory_mb}")


@dataclass
class Outcome:
    """How one job ended. Everything in it is safe to log; ``detail`` is short."""

    ok: bool
    value: Any
    error: ErrorKind | None
    detail: str
    logs: list[dict[str, Any]] = field(default_factory=list)
    http: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    isolation: str = "isolated"  # or "weak" (mode="unsafe-process")

    @property
    def weakly_isolated(self) -> bool:
        return self.isolation != "isolated"
