"""Functions under an agent (Call2Me's routes), their versions, and a test run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Response

from ...dialects import DIALECTS
from ...store import FunctionRecord, NameTaken, StoreError, VersionRecord, Workspace
from ...store.secrets import MASK
from ...validation import Problem
from ..calls import check_mapping
from ..catalog import runnable_agent, runnable_function
from ..deps import PlatformDep, WorkspaceDep
from ..documents import FunctionDraft, patch_base, read_function, render_function
from ..errors import invalid, not_found
from ..platform import Platform
from ..schemas import (
    ERRORS,
    AgentId,
    ExecuteIn,
    FunctionId,
    FunctionList,
    FunctionOut,
    FunctionTestOut,
    ProblemOut,
    VersionList,
    VersionNumber,
    VersionOut,
    at,
    result_fields,
)
from .agents import load_agent_record

router = APIRouter(prefix="/v1/agents/{agent_id}/functions", tags=["functions"], responses=ERRORS)

if TYPE_CHECKING:
    Dialect = str
else:  # every dialect the engine has, as the OpenAPI enum
    Dialect = Literal[DIALECTS]
DialectQuery = Annotated[
    Dialect | None,
    Query(
        description="The dialect you speak: the body's (detected when absent) and the "
        "response's (canonical voicefn when absent). LLM dialects are output only."
    ),
]
SecretHeaders = Annotated[
    list[str] | None,
    Query(
        alias="secret_header",
        description="Mark a header secret (encrypted, shown masked); repeatable. The api_token "
        "and headers named like credentials (Authorization, X-Api-Key, ...) always are.",
    ),
]
SEED_004 = {
    "name": "get_order_status",
    "description": "Look up the shipping status of an e-commerce order by ID.",
    "url": "https://your-api.com/order-status",
    "method": "POST",
    "parameters": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "The order number, digits only"}
        },
        "required": ["order_id"],
    },
    "speak_during_execution": "Let me check that for you...",
    "timeout_ms": 4000,
}
FunctionBody = Annotated[
    dict[str, Any],
    Body(
        description="A function in any dialect the engine loads: voicefn (the canonical "
        "Function), bolna, call2me, callkaro, or code as "
        '{"$language": "python", "$source": "..."}.',
        examples=[SEED_004],
    ),
]


def function_out(
    record: FunctionRecord, dialect: str | None, warnings: list[Problem] | None = None
) -> FunctionOut:
    name = dialect or "voicefn"
    doc, lost = render_function(record.document, name)
    headers = (record.document.get("action") or {}).get("headers") or {}
    return FunctionOut(
        id=record.id,
        agent_id=record.agent_id,
        name=record.name,
        version=record.version,
        dialect=name,
        source_dialect=record.dialect,
        function=doc,
        lost=lost,
        secret_headers=[k for k, v in headers.items() if v == MASK],
        problems=[ProblemOut(**p.to_dict()) for p in warnings or []],
        created_at=at(record.created_us),
        updated_at=at(record.updated_us),
    )


async def load_function(
    platform: Platform, ws: Workspace, agent_id: str, function_id: str
) -> FunctionRecord:
    async with platform.store.read() as repos:
        record = await repos.functions.get(ws, agent_id, function_id)
    if record is None:
        raise not_found(f"function {function_id} of agent {agent_id}")
    return record


def _taken(exc: NameTaken, dialect: str | None, name: str) -> Exception:
    return invalid([Problem("$.name", str(exc), "choose another name", name)], dialect)


async def _draft(
    platform: Platform,
    ws: Workspace,
    agent_id: str,
    body: Any,
    dialect: str | None,
    mark: list[str],
    previous: FunctionRecord | None = None,
) -> FunctionDraft:
    """The body validated against the agent's variables (a 422 listing every problem), with the
    warnings of its post-call mapping against what the agent declares."""
    agent = await load_agent_record(platform, ws, agent_id)
    variables = list((agent.document.get("variables") or {}).keys())
    draft = read_function(body, dialect, previous=previous, mark=mark, variables=variables)
    draft.warnings.extend(
        await check_mapping(platform, ws, agent_id, draft.document, draft.dialect)
    )
    return draft


async def _save(
    platform: Platform,
    ws: Workspace,
    agent_id: str,
    function_id: str,
    new: FunctionDraft | VersionRecord,
    dialect: str | None,
    restored_from: int | None = None,
) -> FunctionRecord:
    """A new current version of the function (``restored_from``: a restore of that version)."""
    try:
        async with platform.store.write() as repos:
            updated = await repos.functions.update(
                ws,
                agent_id,
                function_id,
                name=new.name,
                document=new.document,
                secrets=new.secrets,
                secret_names=new.secret_names,
                dialect=new.dialect,
                change="update" if restored_from is None else "restore",
                restored_from=restored_from,
            )
    except NameTaken as exc:
        raise _taken(exc, dialect, new.name) from None
    if updated is None:
        raise not_found(f"function {function_id} of agent {agent_id}")
    return updated


async def _find_version(
    platform: Platform, ws: Workspace, agent_id: str, function_id: str, version: int
) -> VersionRecord:
    async with platform.store.read() as repos:
        found = await repos.functions.version(ws, agent_id, function_id, version)
    if found is None:
        raise not_found(f"version {version} of function {function_id}")
    return found


@router.post("", status_code=201, summary="Create a function (any dialect)")
async def create_function(
    agent_id: AgentId,
    body: FunctionBody,
    ws: WorkspaceDep,
    platform: PlatformDep,
    dialect: DialectQuery = None,
    secret_header: SecretHeaders = None,
) -> FunctionOut:
    draft = await _draft(platform, ws, agent_id, body, dialect, secret_header or [])
    try:
        async with platform.store.write() as repos:
            record = await repos.functions.create(
                ws,
                agent_id,
                name=draft.name,
                document=draft.document,
                secrets=draft.secrets,
                secret_names=draft.secret_names,
                dialect=draft.dialect,
            )
    except NameTaken as exc:
        raise _taken(exc, draft.dialect, draft.name) from None
    except StoreError:
        raise not_found(f"agent {agent_id}") from None
    return function_out(record, dialect, draft.warnings)


@router.get("", summary="An agent's functions")
async def list_functions(
    agent_id: AgentId, ws: WorkspaceDep, platform: PlatformDep, dialect: DialectQuery = None
) -> FunctionList:
    await load_agent_record(platform, ws, agent_id)
    async with platform.store.read() as repos:
        records = await repos.functions.all(ws, agent_id)
    return FunctionList(data=[function_out(r, dialect) for r in records])


@router.get("/{function_id}", summary="A function (canonical, or ?dialect=)")
async def get_function(
    agent_id: AgentId,
    function_id: FunctionId,
    ws: WorkspaceDep,
    platform: PlatformDep,
    dialect: DialectQuery = None,
) -> FunctionOut:
    return function_out(await load_function(platform, ws, agent_id, function_id), dialect)


async def _update(
    platform: Platform,
    ws: Workspace,
    record: FunctionRecord,
    body: Any,
    dialect: str | None,
    out_dialect: str | None,
    mark: list[str],
) -> FunctionOut:
    draft = await _draft(platform, ws, record.agent_id, body, dialect, mark, previous=record)
    updated = await _save(platform, ws, record.agent_id, record.id, draft, draft.dialect)
    return function_out(updated, out_dialect, draft.warnings)


@router.put("/{function_id}", summary="Replace a function (any dialect); a new version")
async def put_function(
    agent_id: AgentId,
    function_id: FunctionId,
    body: FunctionBody,
    ws: WorkspaceDep,
    platform: PlatformDep,
    dialect: DialectQuery = None,
    secret_header: SecretHeaders = None,
) -> FunctionOut:
    record = await load_function(platform, ws, agent_id, function_id)
    return await _update(platform, ws, record, body, dialect, dialect, secret_header or [])


@router.patch(
    "/{function_id}",
    summary="Change some fields (JSON merge patch, in the function's dialect); a new version",
)
async def patch_function(
    agent_id: AgentId,
    function_id: FunctionId,
    body: Annotated[
        dict[str, Any],
        Body(
            description="The fields to change, in ?dialect= (default: the dialect the function "
            "was last written in); null removes a field.",
            examples=[{"timeout_ms": 3000}],
        ),
    ],
    ws: WorkspaceDep,
    platform: PlatformDep,
    dialect: DialectQuery = None,
    secret_header: SecretHeaders = None,
) -> FunctionOut:
    from ..documents import merge_patch

    record = await load_function(platform, ws, agent_id, function_id)
    base, used = patch_base(record, dialect)
    merged = merge_patch(base, body)
    return await _update(platform, ws, record, merged, used, dialect, secret_header or [])


@router.delete("/{function_id}", status_code=204, summary="Delete a function")
async def delete_function(
    agent_id: AgentId, function_id: FunctionId, ws: WorkspaceDep, platform: PlatformDep
) -> Response:
    async with platform.store.write() as repos:
        deleted = await repos.functions.delete(ws, agent_id, function_id)
    if not deleted:
        raise not_found(f"function {function_id} of agent {agent_id}")
    return Response(status_code=204)


# ------------------------------------------------------------------------------ versions


@router.get("/{function_id}/versions", summary="Every version of a function, newest first")
async def list_versions(
    agent_id: AgentId, function_id: FunctionId, ws: WorkspaceDep, platform: PlatformDep
) -> VersionList:
    async with platform.store.read() as repos:
        record = await repos.functions.get(ws, agent_id, function_id)
        versions = await repos.functions.versions(ws, agent_id, function_id)
    if record is None or versions is None:
        raise not_found(f"function {function_id} of agent {agent_id}")
    return VersionList(
        function_id=function_id,
        current=record.version,
        data=[
            VersionOut(
                version=v.version,
                name=v.name,
                change=v.change,
                restored_from=v.restored_from,
                dialect=v.dialect,
                created_at=at(v.created_us),
            )
            for v in versions
        ],
    )


@router.get("/{function_id}/versions/{version}", summary="One version of a function")
async def get_version(
    agent_id: AgentId,
    function_id: FunctionId,
    version: VersionNumber,
    ws: WorkspaceDep,
    platform: PlatformDep,
    dialect: DialectQuery = None,
) -> VersionOut:
    found = await _find_version(platform, ws, agent_id, function_id, version)
    doc, _ = render_function(found.document, dialect or "voicefn")
    return VersionOut(
        version=found.version,
        name=found.name,
        change=found.change,
        restored_from=found.restored_from,
        dialect=dialect or "voicefn",
        created_at=at(found.created_us),
        function=doc,
    )


@router.post(
    "/{function_id}/versions/{version}/restore",
    summary="Make an earlier version current again (as a new version)",
)
async def restore_version(
    agent_id: AgentId,
    function_id: FunctionId,
    version: VersionNumber,
    ws: WorkspaceDep,
    platform: PlatformDep,
    dialect: DialectQuery = None,
) -> FunctionOut:
    found = await _find_version(platform, ws, agent_id, function_id, version)
    restored = await _save(platform, ws, agent_id, function_id, found, None, restored_from=version)
    return function_out(restored, dialect)


# ------------------------------------------------------------------------------ test


@router.post(
    "/{function_id}/test",
    summary="Run the function for real with sample arguments and call variables",
)
async def test_function(
    agent_id: AgentId,
    function_id: FunctionId,
    body: ExecuteIn,
    ws: WorkspaceDep,
    platform: PlatformDep,
) -> FunctionTestOut:
    """Runs the current version through the workspace's Executor (its egress policy applies)
    and records it (``source: test``). Returns the request as sent (secrets redacted), what the
    LLM reads, the status and the timings."""
    agent_record = await load_agent_record(platform, ws, agent_id)
    record = await load_function(platform, ws, agent_id, function_id)
    agent = runnable_agent(agent_record)
    fn = runnable_function(record, agent)
    ctx = platform.call_context(ws, agent, **body.context.model_dump(exclude={"language"}))
    execution_id, result = await platform.run(
        ws,
        agent,
        fn,
        arguments=body.arguments,
        context=ctx,
        tool_call_id=body.tool_call_id,
        source="test",
    )
    request = None
    if result.request is not None:
        r = result.request
        request = {"method": r.method, "url": r.url, "headers": r.headers, "body": r.body}
    return FunctionTestOut(
        execution_id=execution_id,
        function_id=fn.id,
        version=fn.version,
        filler=fn.function.filler_for(body.context.language or agent.language),
        request=request,
        arguments=result.arguments,
        from_context=result.from_context,
        ignored_arguments=result.ignored_arguments,
        logs=result.logs,
        sandbox=result.sandbox,
        **result_fields(result),
    )
