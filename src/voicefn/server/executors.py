"""One shared :class:`~voicefn.Executor` per distinct egress policy.

Workspaces with the same effective settings share an Executor (and its connection pool);
sandboxed code is still kept apart per workspace by the Executor itself, because every run
carries ``CallContext(workspace_id=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..egress import EgressPolicy
from ..executor import Executor
from ..store.records import Settings
from .config import EgressDefaults, SandboxMode


@dataclass(frozen=True, slots=True)
class Policy:
    """The effective egress policy and sandbox mode of a workspace."""

    allow: tuple[str, ...]
    allow_private_network: bool
    https_only: bool
    sandbox_mode: SandboxMode

    @classmethod
    def effective(cls, defaults: EgressDefaults, settings: Settings) -> Policy:
        return cls(
            tuple(sorted(settings.allow)) if settings.allow is not None else defaults.allow,
            defaults.allow_private_network
            if settings.allow_private_network is None
            else settings.allow_private_network,
            defaults.https_only if settings.https_only is None else settings.https_only,
            settings.sandbox_mode or defaults.sandbox_mode,
        )


def check_allow(entries: tuple[str, ...]) -> list[tuple[int, str]]:
    """The allow-list entries the egress policy refuses, with why: ``[(index, message)]``."""
    bad: list[tuple[int, str]] = []
    for i, entry in enumerate(entries):
        try:
            EgressPolicy.from_strings([entry])
        except ValueError as exc:
            bad.append((i, str(exc)))
    return bad


class ExecutorPool:
    def __init__(
        self, webhook_grace_s: float = 2.0, on_new: Callable[[Executor], None] | None = None
    ) -> None:
        self._executors: dict[Policy, Executor] = {}
        self._grace = webhook_grace_s
        self._on_new = on_new  # e.g. sign its pre-call webhooks

    def get(self, policy: Policy) -> Executor:
        executor = self._executors.get(policy)
        if executor is None:
            executor = Executor(
                allow=policy.allow,
                allow_private_network=policy.allow_private_network,
                https_only=policy.https_only,
                sandbox_mode=policy.sandbox_mode,
                # Tenants write these functions: an MCP server they name by command line would
                # run on this host. Never, whatever VOICEFN_ALLOW_MCP_COMMANDS says.
                allow_mcp_commands=False,
            )
            if self._on_new is not None:
                self._on_new(executor)
            self._executors[policy] = executor
        return executor

    def __len__(self) -> int:
        return len(self._executors)

    async def aclose(self) -> None:
        executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            await executor.aclose(self._grace)
