"""Functions: the list, and a function's page (JSON editor, cURL import, test panel, versions).

The editor's script talks JSON to the routes below (validate, from-curl, save); they call the
REST API's own route functions with the signed-in workspace, so a page validates, converts and
stores exactly like the API.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from ...dialects import DIALECTS, LOADABLE
from ...store import FunctionRecord
from ..errors import ApiError
from ..routes import functions as api
from ..routes import tools
from ..schemas import ExecuteIn, FromCurlIn
from . import data
from .auth import PlatformDep, ViewerDep, form
from .render import PageError, page, redirect, render

router = APIRouter(include_in_schema=False)

MAX_DOCUMENT = 1 << 20
STARTER = {
    "name": "check_order_status",
    "description": "Use this when the caller asks where their order is.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "The order ID, e.g. ORD-1"}},
        "required": ["order_id"],
    },
    "filler": "Let me check that for you.",
    "action": {
        "type": "http",
        "method": "GET",
        "url": "https://api.example.com/orders",
        "param": {"order_id": "%(order_id)s"},
    },
}


def _dialect(value: str | None, *, writable: bool = False) -> str | None:
    if not value or value == "detect":
        return None
    if value not in DIALECTS or (writable and value not in LOADABLE):
        raise PageError(422, "Unknown dialect", f"{value} is not a dialect this server writes.")
    return value


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_DOCUMENT:
        raise PageError(413, "Too large", "A function document is at most 1 MiB.")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise PageError(422, "Not JSON", f"the request is not JSON: {exc}") from None


def _problems_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "message": exc.message, "problems": data.problems_of(exc)},
        status_code=exc.status,
    )


def _text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


# ------------------------------------------------------------------------------ pages


@router.get("/functions")
async def functions_page(request: Request, viewer: ViewerDep, platform: PlatformDep) -> Response:
    agents = await data.agents(platform, viewer.ws)
    rows: list[tuple[Any, FunctionRecord]] = []
    async with platform.store.read() as repos:
        for agent in agents:
            rows += [(agent, f) for f in await repos.functions.all(viewer.ws, agent.id)]
    return page(request, "functions.html", nav="functions", rows=rows, agents=agents)


def _editor_page(request: Request, **context: Any) -> Response:
    context.setdefault("restored", None)
    context.setdefault("saved", None)
    return page(
        request,
        "function.html",
        nav="functions",
        dialects=DIALECTS,
        writable=list(LOADABLE),
        **context,
    )


@router.get("/agents/{agent_id}/functions/new")
async def new_function_page(
    request: Request, agent_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    agent = await data.agent(platform, viewer.ws, agent_id)
    return _editor_page(
        request,
        agent=agent,
        function=None,
        dialect="voicefn",
        text=_text(STARTER),
        lost=[],
        versions=[],
        arguments="{}",
    )


@router.get("/agents/{agent_id}/functions/{function_id}")
async def function_page(
    request: Request,
    agent_id: str,
    function_id: str,
    viewer: ViewerDep,
    platform: PlatformDep,
    dialect: str | None = None,
) -> Response:
    agent = await data.agent(platform, viewer.ws, agent_id)
    record = await data.function(platform, viewer.ws, agent.id, function_id)
    shown = _dialect(dialect) or (record.dialect if record.dialect in LOADABLE else "voicefn")
    try:
        out = api.function_out(record, shown)
    except ApiError as exc:  # a dialect that cannot express this function (code, for one)
        return _editor_page(
            request,
            status=422,
            agent=agent,
            function=record,
            dialect=shown,
            text=_text(api.function_out(record, "voicefn").function),
            lost=[p["message"] for p in data.problems_of(exc)],
            versions=await _versions(platform, viewer, record),
            arguments=_sample_arguments(record),
        )
    return _editor_page(
        request,
        agent=agent,
        function=record,
        dialect=shown,
        text=_text(out.function),
        lost=out.lost,
        versions=await _versions(platform, viewer, record),
        arguments=_sample_arguments(record),
        restored=request.query_params.get("restored"),
        saved=request.query_params.get("saved"),
    )


def _sample_arguments(record: FunctionRecord) -> str:
    """The test panel's starting arguments: each parameter with an empty value of its type."""
    props = (record.document.get("parameters") or {}).get("properties") or {}
    empty = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    sample = {
        name: empty.get(str(schema.get("type")), "") if isinstance(schema, dict) else ""
        for name, schema in props.items()
    }
    return _text(sample)


async def _versions(platform: PlatformDep, viewer: ViewerDep, record: FunctionRecord) -> Any:
    async with platform.store.read() as repos:
        return await repos.functions.versions(viewer.ws, record.agent_id, record.id) or []


# ------------------------------------------------------------------------------ editor


@router.post("/agents/{agent_id}/validate")
async def validate(
    request: Request,
    agent_id: str,
    viewer: ViewerDep,
    platform: PlatformDep,
    dialect: str | None = None,
) -> JSONResponse:
    agent = await data.agent(platform, viewer.ws, agent_id)
    body = await _json_body(request)
    variables = list((agent.document.get("variables") or {}).keys())
    if not isinstance(body, dict):
        problem = {
            "severity": "error",
            "path": "$",
            "message": "a function is a JSON object",
            "found": None,
            "fix": 'write {"name": ..., "description": ..., ...}',
        }
        return JSONResponse({"ok": False, "dialect": None, "problems": [problem]})
    try:
        out = await tools.validate_function(
            body, viewer.principal.workspace, _dialect(dialect, writable=True), variables
        )
    except ApiError as exc:
        return _problems_response(exc)
    return JSONResponse(out.model_dump(mode="json", exclude={"function"}))


@router.post("/agents/{agent_id}/from-curl")
async def from_curl(
    request: Request,
    agent_id: str,
    viewer: ViewerDep,
    platform: PlatformDep,
    dialect: str | None = None,
) -> JSONResponse:
    await data.agent(platform, viewer.ws, agent_id)
    body = await _json_body(request)
    try:
        given = FromCurlIn.model_validate(body)
    except ValidationError:
        return JSONResponse(
            {"ok": False, "problems": [], "message": "paste a curl command (up to 100 KB)"},
            status_code=422,
        )
    try:
        out = await tools.from_curl(given, viewer.ws, _dialect(dialect, writable=True))
    except ApiError as exc:
        return _problems_response(exc)
    return JSONResponse({"ok": True, **out.model_dump(mode="json")})


def _save_input(body: Any) -> tuple[Any, str | None]:
    if not isinstance(body, dict) or "document" not in body:
        raise PageError(422, "Nothing to save", "send {document, dialect}")
    dialect = body.get("dialect")
    return body["document"], _dialect(dialect if isinstance(dialect, str) else None, writable=True)


@router.post("/agents/{agent_id}/functions")
async def create_function(
    request: Request, agent_id: str, viewer: ViewerDep, platform: PlatformDep
) -> JSONResponse:
    agent = await data.agent(platform, viewer.ws, agent_id)
    document, dialect = _save_input(await _json_body(request))
    if not isinstance(document, dict):
        raise PageError(422, "Not a function", "a function is a JSON object")
    try:
        out = await api.create_function(agent.id, document, viewer.ws, platform, dialect, None)
    except ApiError as exc:
        return _problems_response(exc)
    url = f"/agents/{agent.id}/functions/{out.id}?saved={out.version}"
    return JSONResponse({"ok": True, "url": url, "version": out.version}, status_code=201)


@router.post("/agents/{agent_id}/functions/{function_id}")
async def save_function(
    request: Request, agent_id: str, function_id: str, viewer: ViewerDep, platform: PlatformDep
) -> JSONResponse:
    record = await data.function(platform, viewer.ws, agent_id, function_id)
    document, dialect = _save_input(await _json_body(request))
    if not isinstance(document, dict):
        raise PageError(422, "Not a function", "a function is a JSON object")
    try:
        out = await api.put_function(
            record.agent_id, record.id, document, viewer.ws, platform, dialect, None
        )
    except ApiError as exc:
        return _problems_response(exc)
    shown = f"&dialect={dialect}" if dialect else ""
    url = f"/agents/{record.agent_id}/functions/{record.id}?saved={out.version}{shown}"
    return JSONResponse({"ok": True, "url": url, "version": out.version})


@router.post("/agents/{agent_id}/functions/{function_id}/delete")
async def delete_function(
    request: Request, agent_id: str, function_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    record = await data.function(platform, viewer.ws, agent_id, function_id)
    async with platform.store.write() as repos:
        await repos.functions.delete(viewer.ws, record.agent_id, record.id)
    return redirect(f"/agents/{record.agent_id}", request)


# ------------------------------------------------------------------------------ test panel


def _json_field(fields: dict[str, str], name: str) -> tuple[Any, str | None]:
    raw = fields.get(name, "").strip() or "{}"
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return None, f"{name}: not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"{name}: write a JSON object"
    return value, None


@router.post("/agents/{agent_id}/functions/{function_id}/test")
async def test_function(
    request: Request, agent_id: str, function_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    record = await data.function(platform, viewer.ws, agent_id, function_id)
    fields = await form(request)
    arguments, bad_arguments = _json_field(fields, "arguments")
    variables, bad_variables = _json_field(fields, "variables")
    errors = [e for e in (bad_arguments, bad_variables) if e]
    result = None
    if not errors:
        try:
            body = ExecuteIn.model_validate(
                {"arguments": arguments, "context": {"variables": variables}}
            )
            result = await api.test_function(record.agent_id, record.id, body, viewer.ws, platform)
        except ValidationError as exc:
            errors = [str(e["msg"]) for e in exc.errors()]
        except ApiError as exc:
            errors = [str(p["message"]) for p in data.problems_of(exc)]
    html = render("_test_result.html", result=result, errors=errors, agent_id=record.agent_id)
    return Response(html, media_type="text/html", status_code=422 if errors else 200)


# ------------------------------------------------------------------------------ versions


def _version(text: str) -> int:
    """A version number from a URL; 0 (no such version) for anything else."""
    return int(text) if text.isdigit() and len(text) < 10 else 0


@router.get("/agents/{agent_id}/functions/{function_id}/diff")
async def diff(
    request: Request,
    agent_id: str,
    function_id: str,
    viewer: ViewerDep,
    platform: PlatformDep,
    old: str = "1",
    new: str | None = None,
    dialect: str | None = None,
) -> Response:
    record = await data.function(platform, viewer.ws, agent_id, function_id)
    pair = (_version(old), _version(new) if new is not None else record.version)
    shown = _dialect(dialect) or "voicefn"
    texts: list[list[str]] = []
    for version in pair:
        if not 1 <= version <= record.version:
            raise PageError(404, "No such version", f"versions go from 1 to {record.version}")
        try:
            found = await api.get_version(
                record.agent_id, record.id, version, viewer.ws, platform, shown
            )
        except ApiError as exc:
            data.problems_of(exc)  # a 404 is the 404 page
            raise PageError(422, "Cannot show", exc.message) from None
        texts.append(_text(found.function).splitlines())
    lines = list(
        difflib.unified_diff(
            texts[0], texts[1], f"version {pair[0]}", f"version {pair[1]}", lineterm=""
        )
    )
    html = render("_diff.html", lines=lines, old=pair[0], new=pair[1])
    return Response(html, media_type="text/html", headers={"Cache-Control": "no-store"})


@router.post("/agents/{agent_id}/functions/{function_id}/versions/{version}/restore")
async def restore(
    request: Request,
    agent_id: str,
    function_id: str,
    version: str,
    viewer: ViewerDep,
    platform: PlatformDep,
) -> Response:
    record = await data.function(platform, viewer.ws, agent_id, function_id)
    number = _version(version)
    if not 1 <= number <= record.version:
        raise PageError(404, "No such version", f"versions go from 1 to {record.version}")
    try:
        out = await api.restore_version(
            record.agent_id, record.id, number, viewer.ws, platform, None
        )
    except ApiError as exc:
        problems = data.problems_of(exc)
        raise PageError(422, "Not restored", "; ".join(p["message"] for p in problems)) from None
    url = f"/agents/{record.agent_id}/functions/{record.id}?restored={number}&saved={out.version}"
    return redirect(url, request)
