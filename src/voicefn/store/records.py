"""What the repositories take and return: plain frozen records, never live ORM objects.

:class:`Workspace` is the tenancy key. Every repository method that touches a workspace's data
takes one as its first argument, so a query that forgets the tenant does not type-check. Only
:meth:`~voicefn.store.protocol.Keys.authenticate` (the API key) and the operator's own calls
produce one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

Change = Literal["create", "update", "restore", "delete"]
SandboxMode = Literal["isolated", "unsafe-process"]


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Workspace:
    """A tenant. Everything else belongs to exactly one."""

    id: str
    name: str
    created_us: int = 0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key of a workspace. ``operator`` keys run the service."""

    workspace: Workspace
    key_id: str
    operator: bool


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    operator: bool
    created_us: int
    revoked_us: int | None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key as created: the only time the secret itself exists outside its owner's hands."""

    record: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class Settings:
    """A workspace's operator settings; ``None`` means the server's default."""

    allow: tuple[str, ...] | None = None
    allow_private_network: bool | None = None
    https_only: bool | None = None
    sandbox_mode: SandboxMode | None = None


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: str
    name: str
    document: dict[str, Any]  #: settings, secret variables masked
    secrets: dict[str, Any]  #: secret variables' values, by name
    secret_names: tuple[str, ...]
    created_us: int
    updated_us: int


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    id: str
    agent_id: str
    name: str
    version: int
    document: dict[str, Any]  #: canonical, secrets masked
    secrets: dict[str, Any]  #: secret values by their place (see voicefn.store.secrets)
    secret_names: tuple[str, ...]
    dialect: str
    created_us: int
    updated_us: int


@dataclass(frozen=True, slots=True)
class VersionRecord:
    function_id: str
    version: int
    agent_id: str
    name: str
    document: dict[str, Any]
    secrets: dict[str, Any]
    secret_names: tuple[str, ...]
    dialect: str
    change: Change
    restored_from: int | None
    created_us: int


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    id: str
    agent_id: str
    function_id: str
    function_name: str
    function_version: int
    source: str
    ok: bool
    status: int | None
    error: str | None
    arguments: Any
    request: Any
    result: str
    timings: dict[str, Any]
    call_sid: str | None
    tool_call_id: str | None
    started_us: int
    total_ms: float


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    agent_id: str | None = None
    function_id: str | None = None
    function_name: str | None = None
    #: "ok", "error", or an error code such as "request_failed"
    status: str | None = None
    source: str | None = None
    since_us: int | None = None
    until_us: int | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    #: Pass back to get the next page; None on the last one.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    seq: int
    workspace_id: str
    kind: str
    ref: str
    #: the process (store instance) that wrote it
    origin: str = ""
