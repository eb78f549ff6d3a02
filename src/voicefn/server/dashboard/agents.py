"""The agents list and an agent's page: prompt, welcome message, variables, webhook, LLM."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import ApiError
from ..routes.agents import agent_out, create_agent, patch_agent
from . import data
from .auth import PlatformDep, ViewerDep, form
from .render import page, redirect

router = APIRouter(include_in_schema=False)

#: The agent page's LLM fields (the rest of ``llm`` is kept as it is).
LLM_FIELDS = ("model", "base_url", "temperature")


@router.get("/")
async def home(_: ViewerDep) -> Response:
    return redirect("/agents")


@router.get("/agents")
async def agents_page(request: Request, viewer: ViewerDep, platform: PlatformDep) -> Response:
    records = await data.agents(platform, viewer.ws)
    counts: dict[str, int] = {}
    async with platform.store.read() as repos:
        for record in records:
            counts[record.id] = len(await repos.functions.all(viewer.ws, record.id))
    return page(
        request,
        "agents.html",
        nav="agents",
        agents=[agent_out(r) for r in records],
        counts=counts,
        problems=[],
        values={},
    )


@router.post("/agents")
async def create(request: Request, viewer: ViewerDep, platform: PlatformDep) -> Response:
    fields = await form(request)
    body = {
        "name": fields.get("name", "").strip(),
        "system_prompt": fields.get("system_prompt", ""),
    }
    try:
        created = await create_agent(body, viewer.ws, platform, None)
    except ApiError as exc:
        records = await data.agents(platform, viewer.ws)
        return page(
            request,
            "agents.html",
            status=422,
            nav="agents",
            agents=[agent_out(r) for r in records],
            counts={},
            problems=data.problems_of(exc),
            values=body,
        )
    return redirect(f"/agents/{created.id}?saved=1")


def _document(fields: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The agent page's form as a merge patch of the agent's settings, and what cannot be read."""
    problems: list[dict[str, Any]] = []

    def text(name: str) -> str | None:
        value = fields.get(name, "").strip()
        return value or None

    variables: Any = {}
    raw = fields.get("variables", "").strip()
    if raw:
        try:
            variables = json.loads(raw)
        except ValueError as exc:
            problems.append(_problem("$.variables", f"not valid JSON: {exc}", raw))
        else:
            if not isinstance(variables, dict):
                problems.append(_problem("$.variables", "variables are a JSON object", raw))
    temperature: float | None = None
    if text("llm_temperature"):
        try:
            temperature = float(fields["llm_temperature"])
        except ValueError:
            problems.append(
                _problem("$.llm.temperature", "not a number", fields["llm_temperature"])
            )
    patch: dict[str, Any] = {
        "name": fields.get("name", "").strip(),
        "system_prompt": fields.get("system_prompt", ""),
        "welcome_message": text("welcome_message"),
        "language": text("language") or "en",
        "variables": variables if isinstance(variables, dict) else {},
        "webhook_url": text("webhook_url"),
        "llm": {
            "model": text("llm_model"),
            "base_url": text("llm_base_url"),
            "temperature": temperature,
        },
    }
    return patch, problems


def _problem(path: str, message: str, found: Any) -> dict[str, Any]:
    fix = 'write a JSON object, e.g. {"customer_name": "there"}'
    if path.endswith("temperature"):
        fix = "write a number from 0 to 2"
    return {"severity": "error", "path": path, "message": message, "found": found, "fix": fix}


async def _agent_page(
    request: Request,
    viewer: ViewerDep,
    platform: PlatformDep,
    agent_id: str,
    *,
    status: int = 200,
    problems: list[dict[str, Any]] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    record = await data.agent(platform, viewer.ws, agent_id)
    async with platform.store.read() as repos:
        functions = await repos.functions.all(viewer.ws, record.id)
    out = agent_out(record)
    llm = out.llm
    shown = {
        "name": out.name,
        "system_prompt": out.system_prompt,
        "welcome_message": out.welcome_message or "",
        "language": out.language,
        "variables": json.dumps(out.variables, indent=2, ensure_ascii=False)
        if out.variables
        else "",
        "secret_variables": ", ".join(out.secret_variables),
        "webhook_url": out.webhook_url or "",
        "llm_model": str(llm.get("model") or ""),
        "llm_base_url": str(llm.get("base_url") or ""),
        "llm_temperature": "" if llm.get("temperature") is None else str(llm["temperature"]),
    }
    shown.update(values or {})
    return page(
        request,
        "agent.html",
        status=status,
        nav="agents",
        agent=out,
        functions=functions,
        values=shown,
        problems=problems or [],
        saved=request.query_params.get("saved"),
    )


@router.get("/agents/{agent_id}")
async def agent_page(
    request: Request, agent_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    return await _agent_page(request, viewer, platform, agent_id)


@router.post("/agents/{agent_id}")
async def save_agent(
    request: Request, agent_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    record = await data.agent(platform, viewer.ws, agent_id)
    fields = await form(request)
    patch, problems = _document(fields)
    mark = [n.strip() for n in fields.get("secret_variables", "").split(",") if n.strip()]
    if not problems:
        # The form holds every variable: those it no longer lists are removed (null in a merge
        # patch); the rest of the agent's settings (other llm keys) stay as they are.
        gone = {k: None for k in record.document.get("variables") or {}}
        patch["variables"] = {**gone, **patch["variables"]}
        try:
            await patch_agent(record.id, patch, viewer.ws, platform, mark)
        except ApiError as exc:
            problems = data.problems_of(exc)
    if problems:
        return await _agent_page(
            request, viewer, platform, record.id, status=422, problems=problems, values=fields
        )
    return redirect(f"/agents/{record.id}?saved=1")


@router.post("/agents/{agent_id}/delete")
async def delete_agent(
    request: Request, agent_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    record = await data.agent(platform, viewer.ws, agent_id)
    async with platform.store.write() as repos:
        await repos.agents.delete(viewer.ws, record.id)
    return redirect("/agents")
