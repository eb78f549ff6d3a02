"""The API's request and response models.

Function and agent documents are the engine's own (any dialect in, canonical or any dialect out),
so they travel as JSON objects; ``Function``'s JSON Schema is published in the OpenAPI document as
the canonical form. Results wrap the engine's ``ToolResult``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ..results import ToolResult

SandboxMode = Literal["isolated", "unsafe-process"]
ToolFormat = Literal["openai", "openai-responses", "anthropic", "gemini"]


ID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
#: Ids in paths: anything else cannot name a stored thing (and never reaches the database).
AgentId = Annotated[str, Path(pattern=ID_PATTERN, examples=["agent_abc123"])]
FunctionId = Annotated[str, Path(pattern=ID_PATTERN)]
KeyId = Annotated[str, Path(pattern=ID_PATTERN)]
WorkspaceId = Annotated[str, Path(pattern=ID_PATTERN)]
ExecutionId = Annotated[str, Path(pattern=ID_PATTERN)]
FunctionName = Annotated[str, Path(pattern=NAME_PATTERN, examples=["get_order_status"])]
VersionNumber = Annotated[int, Path(ge=1, le=2_147_483_647)]
IdFilter = Annotated[str | None, Query(pattern=ID_PATTERN)]
Cursor = Annotated[str | None, Query(max_length=300, pattern=r"^[A-Za-z0-9_-]+$")]
#: Free text stored as a name: printable, no control characters.
Label = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


def at(us: int) -> dt.datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)


def iso(us: int | None) -> dt.datetime | None:
    return None if us is None else at(us)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------- errors


class ProblemOut(BaseModel):
    severity: Literal["error", "warning"]
    path: str = Field(description="JSON path in the document as the caller wrote it")
    message: str
    found: Any = None
    fix: str


class ErrorOut(BaseModel):
    error: str = Field(
        description="invalid, not_found, unauthorized, forbidden, conflict, internal"
    )
    message: str | None = None
    problems: list[ProblemOut] | None = None
    dialect: str | None = None
    request_id: str | None = None
    content: str | None = Field(
        default=None, description="unknown_function: what to hand the LLM (the real names)"
    )
    functions: list[str] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No API key, or one that is unknown or revoked"},
    404: {"model": ErrorOut, "description": "Not found in this workspace"},
    422: {"model": ErrorOut, "description": "Invalid input: every problem, nothing changed"},
}


# ---------------------------------------------------------------------------- tenants


class WorkspaceOut(BaseModel):
    id: str
    name: str
    created_at: dt.datetime


class WorkspaceIn(_In):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")


class ApiKeyIn(_In):
    name: Label = "api key"
    operator: bool = Field(
        default=False, description="may manage workspaces and settings (operator keys only)"
    )


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    operator: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the key itself: shown once, store it now")


class WorkspaceCreated(BaseModel):
    workspace: WorkspaceOut
    api_key: ApiKeyCreated


class SettingsIn(_In):
    """``null`` (or absent) means the server's default (``voicefn serve`` options)."""

    allow: list[str] | None = Field(
        default=None, description="hosts, *.domains or CIDRs functions may reach despite the policy"
    )
    allow_private_network: bool | None = None
    https_only: bool | None = None
    sandbox_mode: SandboxMode | None = None


class EffectiveSettings(BaseModel):
    allow: list[str]
    allow_private_network: bool
    https_only: bool
    sandbox_mode: SandboxMode


class SettingsOut(BaseModel):
    workspace_id: str
    settings: SettingsIn
    effective: EffectiveSettings


# ---------------------------------------------------------------------------- agents


class AgentOut(BaseModel):
    id: str
    name: str
    system_prompt: str
    welcome_message: str | None = None
    language: str
    variables: dict[str, Any] = Field(description="secret variables are shown as [secret]")
    webhook_url: str | None = None
    llm: dict[str, Any]
    post_call_variables: list[dict[str, Any]] = Field(
        default_factory=list, description="extracted from the transcript after each call"
    )
    post_call: dict[str, Any] = Field(
        default_factory=dict, description="the built-in extras: summary, outcome"
    )
    secret_variables: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime


class AgentList(BaseModel):
    data: list[AgentOut]
    next_cursor: str | None = None


class ImportedFunction(BaseModel):
    name: str
    id: str
    version: int
    change: Literal["created", "updated", "unchanged", "deleted"]


class ImportOut(BaseModel):
    agent: AgentOut
    created: bool
    functions: list[ImportedFunction]
    problems: list[ProblemOut] = Field(default_factory=list, description="warnings")


# ---------------------------------------------------------------------------- functions


class FunctionOut(BaseModel):
    id: str
    agent_id: str
    name: str
    version: int
    dialect: str = Field(description="the dialect `function` is written in")
    source_dialect: str = Field(description="the dialect the last change was written in")
    function: dict[str, Any] = Field(
        description="the function document (canonical: see the Function schema); secrets are "
        "shown as [secret] and kept when written back as [secret]"
    )
    lost: list[str] = Field(default_factory=list, description="what the dialect cannot carry")
    secret_headers: list[str] = Field(default_factory=list)
    problems: list[ProblemOut] = Field(default_factory=list, description="warnings")
    created_at: dt.datetime
    updated_at: dt.datetime


class FunctionList(BaseModel):
    data: list[FunctionOut]


class VersionOut(BaseModel):
    version: int
    name: str
    change: Literal["create", "update", "restore", "delete"]
    restored_from: int | None = None
    dialect: str
    created_at: dt.datetime
    function: dict[str, Any] | None = Field(
        default=None, description="the document (in the detail view)"
    )


class VersionList(BaseModel):
    function_id: str
    current: int
    data: list[VersionOut]


class FromCurlIn(_In):
    curl: str = Field(min_length=1, max_length=100_000, description="a curl command, as pasted")
    name: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_-]{1,64}$")


class FromCurlOut(BaseModel):
    dialect: str
    function: dict[str, Any]
    warnings: list[str]
    problems: list[ProblemOut]


class ValidateOut(BaseModel):
    ok: bool
    dialect: str | None
    problems: list[ProblemOut]
    function: dict[str, Any] | None = Field(
        default=None, description="the canonical document when valid (secrets masked)"
    )


class ToolsOut(BaseModel):
    format: ToolFormat
    tools: list[dict[str, Any]]


# ---------------------------------------------------------------------------- running


class ContextIn(_In):
    """The call a function runs in: system variables and the call's dynamic variables."""

    call_sid: str | None = Field(default=None, max_length=200)
    from_number: str | None = Field(default=None, max_length=64)
    to_number: str | None = Field(default=None, max_length=64)
    execution_id: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=20, description="for the filler")
    variables: dict[str, Any] = Field(default_factory=dict)


class ExecuteIn(_In):
    arguments: dict[str, Any] | str | None = Field(
        default=None, description="the LLM's arguments: an object, or its raw JSON text"
    )
    context: ContextIn = Field(default_factory=ContextIn)
    tool_call_id: str | None = Field(default=None, max_length=200)


class TimingsOut(BaseModel):
    started_at: float
    bind_ms: float
    render_ms: float
    time_to_request_ms: float | None = None
    request_ms: float | None = None
    total_ms: float


class RequestOut(BaseModel):
    method: str
    url: str
    headers: dict[str, str]
    body: Any = None


class ExecuteOut(BaseModel):
    """The engine's ToolResult: ``content`` is exactly what the LLM reads."""

    execution_id: str
    function: str
    function_id: str
    version: int
    ok: bool
    content: str
    status: int | None = None
    error: str | None = None
    filler: str | None = None
    directive: dict[str, Any] | None = None
    data: Any = None
    truncated: bool = False
    timings: TimingsOut


class FunctionTestOut(ExecuteOut):
    request: RequestOut | None = Field(default=None, description="as sent, secrets redacted")
    arguments: dict[str, Any]
    from_context: list[str]
    ignored_arguments: list[str]
    logs: list[dict[str, Any]]
    sandbox: dict[str, Any] | None = None


class ExecutionOut(BaseModel):
    id: str
    agent_id: str
    function_id: str
    function: str
    version: int
    source: str
    ok: bool
    status: int | None = None
    error: str | None = None
    started_at: dt.datetime
    total_ms: float
    call_sid: str | None = None
    tool_call_id: str | None = None


class ExecutionDetail(ExecutionOut):
    arguments: Any
    request: RequestOut | None = None
    result: str = Field(description="what the LLM read (cut to 4 KiB)")
    timings: dict[str, Any]


class ExecutionList(BaseModel):
    data: list[ExecutionOut]
    next_cursor: str | None = None


def result_fields(result: ToolResult) -> dict[str, Any]:
    """The ToolResult fields every run returns (see ExecuteOut)."""
    t = result.timings
    return {
        "function": result.function,
        "ok": result.ok,
        "content": result.content,
        "status": result.status,
        "error": result.error,
        "directive": result.directive,
        "data": result.data,
        "truncated": result.truncated,
        "timings": {
            "started_at": t.started_at,
            "bind_ms": t.bind_ms,
            "render_ms": t.render_ms,
            "time_to_request_ms": t.time_to_request_ms,
            "request_ms": t.request_ms,
            "total_ms": t.total_ms,
        },
    }
