"""The store behind a small Protocol: what the service needs, nothing about SQL.

``async with store.read() as repos`` / ``async with store.write() as repos`` hand out one
:class:`Repos` bound to one transaction (a write commits when the block ends, or nothing at all).
Every method that touches a workspace's data takes the :class:`~voicefn.store.records.Workspace`
first: a query cannot forget its tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from .records import (
    AgentRecord,
    ApiKey,
    Change,
    ChangeEvent,
    ExecutionFilter,
    ExecutionRecord,
    FunctionRecord,
    NewApiKey,
    Page,
    Principal,
    Settings,
    VersionRecord,
    Workspace,
)

if TYPE_CHECKING:
    from .sql.calls import SqlCalls
    from .sql.jobs import SqlJobs, SqlSigningKeys


class StoreError(Exception):
    """A write the data refuses; ``field`` names what the caller should change."""

    def __init__(self, message: str, field: str = "name") -> None:
        super().__init__(message)
        self.field = field


class NameTaken(StoreError):
    """Another agent (in this workspace) or function (in this agent) has that name."""


class LastKey(StoreError):
    """Revoking this key would lock the workspace out."""


class Workspaces(Protocol):
    async def create(self, name: str) -> Workspace: ...
    async def get(self, workspace_id: str) -> Workspace | None: ...
    async def by_name(self, name: str) -> Workspace | None: ...
    async def all(self) -> list[Workspace]: ...
    async def count(self) -> int: ...


class Keys(Protocol):
    async def authenticate(self, secret: str) -> Principal | None: ...
    async def create(self, ws: Workspace, name: str, *, operator: bool = False) -> NewApiKey: ...
    async def all(self, ws: Workspace) -> list[ApiKey]: ...
    async def revoke(self, ws: Workspace, key_id: str) -> ApiKey | None: ...


class SettingsRepo(Protocol):
    async def get(self, ws: Workspace) -> Settings: ...
    async def put(self, ws: Workspace, settings: Settings) -> Settings: ...


class Agents(Protocol):
    async def create(
        self,
        ws: Workspace,
        *,
        name: str,
        document: dict[str, Any],
        secrets: dict[str, Any],
        secret_names: Sequence[str],
        agent_id: str | None = None,
    ) -> AgentRecord: ...
    async def get(self, ws: Workspace, agent_id: str) -> AgentRecord | None: ...
    async def by_name(self, ws: Workspace, name: str) -> AgentRecord | None: ...
    async def page(self, ws: Workspace, *, limit: int, cursor: str | None) -> Page[AgentRecord]: ...
    async def update(
        self,
        ws: Workspace,
        agent_id: str,
        *,
        name: str,
        document: dict[str, Any],
        secrets: dict[str, Any],
        secret_names: Sequence[str],
    ) -> AgentRecord | None: ...
    async def delete(self, ws: Workspace, agent_id: str) -> bool: ...


class Functions(Protocol):
    async def create(
        self,
        ws: Workspace,
        agent_id: str,
        *,
        name: str,
        document: dict[str, Any],
        secrets: dict[str, Any],
        secret_names: Sequence[str],
        dialect: str,
    ) -> FunctionRecord: ...
    async def get(
        self, ws: Workspace, agent_id: str, function_id: str
    ) -> FunctionRecord | None: ...
    async def by_name(self, ws: Workspace, agent_id: str, name: str) -> FunctionRecord | None: ...
    async def all(self, ws: Workspace, agent_id: str) -> list[FunctionRecord]: ...
    async def update(
        self,
        ws: Workspace,
        agent_id: str,
        function_id: str,
        *,
        name: str,
        document: dict[str, Any],
        secrets: dict[str, Any],
        secret_names: Sequence[str],
        dialect: str,
        change: Change = "update",
        restored_from: int | None = None,
    ) -> FunctionRecord | None: ...
    async def delete(self, ws: Workspace, agent_id: str, function_id: str) -> bool: ...
    async def versions(
        self, ws: Workspace, agent_id: str, function_id: str
    ) -> list[VersionRecord] | None: ...
    async def version(
        self, ws: Workspace, agent_id: str, function_id: str, version: int
    ) -> VersionRecord | None: ...


class Executions(Protocol):
    async def add(self, rows: Sequence[tuple[Workspace, ExecutionRecord]]) -> None:
        """Insert; an execution already stored (same id) is skipped, so replays are safe."""
        ...

    async def page(
        self, ws: Workspace, flt: ExecutionFilter, *, limit: int, cursor: str | None
    ) -> Page[ExecutionRecord]: ...
    async def get(self, ws: Workspace, execution_id: str) -> ExecutionRecord | None: ...


class Changes(Protocol):
    async def since(self, seq: int, limit: int = 1000) -> list[ChangeEvent]: ...
    async def latest(self) -> int: ...
    async def prune(self, before_us: int) -> int: ...


class Repos(Protocol):
    @property
    def workspaces(self) -> Workspaces: ...
    @property
    def keys(self) -> Keys: ...
    @property
    def settings(self) -> SettingsRepo: ...
    @property
    def agents(self) -> Agents: ...
    @property
    def functions(self) -> Functions: ...
    @property
    def executions(self) -> Executions: ...
    @property
    def changes(self) -> Changes: ...
    @property
    def jobs(self) -> SqlJobs: ...
    @property
    def signing_keys(self) -> SqlSigningKeys: ...
    @property
    def calls(self) -> SqlCalls: ...


class Store(Protocol):
    @property
    def backend(self) -> str: ...
    @property
    def origin(self) -> str:
        """This store's name in the change feed (what it wrote, it already told its own)."""
        ...

    def subscribe(self, listener: Callable[[ChangeEvent], None]) -> None: ...

    def read(self) -> AbstractAsyncContextManager[Repos]: ...
    def write(self) -> AbstractAsyncContextManager[Repos]: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class BadCursor(ValueError):
    """A pagination cursor this store did not hand out."""
