"""Routes without side effects: cURL import, validation, and the LLM-facing tool schemas."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...context import SYSTEM_VARIABLES, CallContext
from ...dialects import dump, validate
from ...spec import Function
from ...store.secrets import function_places, seal
from ...validation import Problem
from ..deps import PlatformDep, WorkspaceDep
from ..documents import check_json
from ..errors import invalid
from ..schemas import (
    ERRORS,
    AgentId,
    FromCurlIn,
    FromCurlOut,
    ProblemOut,
    ToolFormat,
    ToolsOut,
    ValidateOut,
)
from .agents import load_agent_record
from .functions import DialectQuery, FunctionBody

router = APIRouter(prefix="/v1", tags=["tools"], responses=ERRORS)


def _problems(problems: list[Problem]) -> list[ProblemOut]:
    return [ProblemOut(**p.to_dict()) for p in problems]


@router.post("/functions/from-curl", summary="A function from a pasted curl command")
async def from_curl(body: FromCurlIn, _: WorkspaceDep, dialect: DialectQuery = None) -> FromCurlOut:
    """Converts the command (nothing is stored or sent). The result carries the credentials you
    pasted, so it can be saved as is."""
    from ...dialects.curl import CurlParseError
    from ...dialects.curl import from_curl as convert

    try:
        imported = convert(body.curl, name=body.name)
    except CurlParseError as exc:
        raise invalid(
            [Problem("$.curl", str(exc), "paste one curl command that makes one request")]
        ) from None
    function = imported.function
    report = validate(function.to_dict(), "voicefn")
    name = dialect or "voicefn"
    try:
        doc, lost = dump(function, name)
    except ValueError as exc:
        raise invalid(
            [Problem("query:dialect", str(exc), "choose another dialect")], name
        ) from None
    warnings = [*imported.warnings, *(f"{name} cannot carry {what}; dropped" for what in lost)]
    return FromCurlOut(
        dialect=name, function=doc, warnings=warnings, problems=_problems(report.problems)
    )


@router.post("/functions/validate", summary="Check a function document in any dialect")
async def validate_function(
    body: FunctionBody,
    _: WorkspaceDep,
    dialect: DialectQuery = None,
    variables: Annotated[
        list[str] | None,
        Query(alias="var", description="a variable every call provides (repeatable)"),
    ] = None,
) -> ValidateOut:
    """Every problem at once, each with its JSON path in your dialect, what was found and the
    fix; ``ok`` is true when there is no error (warnings allowed). Nothing is stored."""
    problems = check_json(body)
    if problems:
        return ValidateOut(ok=False, dialect=dialect, problems=_problems(problems))
    report = validate(body, dialect, variables=variables or [])
    function: dict[str, Any] | None = None
    if report.function is not None and report.ok:
        canonical = report.function.to_dict()
        function = seal(canonical, function_places(canonical), {})[0]
    return ValidateOut(
        ok=report.ok,
        dialect=report.dialect,
        problems=_problems(report.problems),
        function=function,
    )


@router.get(
    "/agents/{agent_id}/tools",
    tags=["execute"],
    summary="The agent's in-call functions as LLM tool schemas",
)
async def agent_tools(
    agent_id: AgentId,
    ws: WorkspaceDep,
    platform: PlatformDep,
    format: ToolFormat = "openai",
    variables: Annotated[
        list[str] | None,
        Query(
            alias="var",
            description="a variable your calls provide (repeatable): parameters it fills are "
            "left out, like the agent's own variables, agent_id and execution_id",
        ),
    ] = None,
) -> ToolsOut:
    """What to give your LLM: name, description and the parameters it must fill. Parameters the
    call context fills (the agent's variables, ``agent_id``, ``execution_id`` and any ``var``)
    are removed; the platform fills them when it runs the function."""
    agent = await load_agent_record(platform, ws, agent_id)
    async with platform.store.read() as repos:
        records = await repos.functions.all(ws, agent_id)
    given = [*(agent.document.get("variables") or {}), *(variables or [])]
    system = {k: "-" for k in given if k in SYSTEM_VARIABLES}
    ctx = CallContext(
        **{"agent_id": agent_id, "execution_id": "-", **system},
        variables={k: "-" for k in given if k not in system},
    )
    tools = []
    for record in records:
        function = Function.model_validate(record.document)
        if function.phase == "in_call":
            tools.append(dump(function, format, context=ctx)[0])
    return ToolsOut(format=format, tools=tools)
