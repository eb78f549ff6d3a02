"""Agents: CRUD, and import/export of the whole agent document (the file ``voicefn call`` reads)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Body, Query, Request, Response

from ...store import AgentRecord, NameTaken, Workspace
from ...validation import Problem
from ..deps import PlatformDep, WorkspaceDep
from ..documents import AGENT_SETTINGS, merge_patch, read_agent
from ..errors import ApiError, invalid, not_found
from ..importing import Applied, apply_agent
from ..platform import Platform
from ..schemas import (
    ERRORS,
    AgentId,
    AgentList,
    AgentOut,
    Cursor,
    ImportedFunction,
    ImportOut,
    ProblemOut,
    at,
)

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=ERRORS)

AGENT_EXAMPLE = {
    "name": "store-agent",
    "system_prompt": "You are Sam from Acme, speaking to {customer_name}.",
    "welcome_message": "Hi {customer_name}, this is Sam from Acme. How can I help?",
    "language": "en",
    "variables": {"customer_name": "there"},
    "webhook_url": "https://hooks.example.com/voicefn",
    "llm": {"model": "gpt-4o-mini", "temperature": 0.3},
}
AgentBody = Annotated[
    dict[str, Any],
    Body(
        description="An agent document, as in an agent file: name, system_prompt, "
        "welcome_message, language, variables, webhook_url, llm; optionally functions "
        "(embedded documents in any dialect).",
        examples=[AGENT_EXAMPLE],
    ),
]
SecretVariables = Annotated[
    list[str] | None,
    Query(
        alias="secret_variable",
        description="Mark a variable secret (encrypted, shown masked); repeatable. Variables "
        "named like credentials (token, secret, password, api_key, ...) always are.",
    ),
]


def agent_out(record: AgentRecord) -> AgentOut:
    doc = record.document
    return AgentOut(
        id=record.id,
        name=record.name,
        system_prompt=str(doc.get("system_prompt", "")),
        welcome_message=doc.get("welcome_message"),
        language=str(doc.get("language", "en")),
        variables=dict(doc.get("variables") or {}),
        webhook_url=doc.get("webhook_url"),
        llm=dict(doc.get("llm") or {}),
        post_call_variables=list(doc.get("post_call_variables") or []),
        post_call=dict(doc.get("post_call") or {}),
        secret_variables=[
            k for k in (doc.get("variables") or {}) if doc["variables"][k] == "[secret]"
        ],
        created_at=at(record.created_us),
        updated_at=at(record.updated_us),
    )


async def load_agent_record(platform: Platform, ws: Workspace, agent_id: str) -> AgentRecord:
    async with platform.store.read() as repos:
        record = await repos.agents.get(ws, agent_id)
    if record is None:
        raise not_found(f"agent {agent_id}")
    return record


def _name_taken(exc: NameTaken, name: str) -> ApiError:
    return invalid([Problem("$.name", str(exc), "choose another name", name)], "agent")


async def _apply(
    platform: Platform,
    ws: Workspace,
    body: dict[str, Any],
    *,
    agent_id: str | None,
    by_name: bool,
    prune: bool,
    mark: list[str],
) -> Applied:
    async with platform.store.read() as repos:
        if agent_id is not None:
            existing = await repos.agents.get(ws, agent_id)
        elif by_name and isinstance(body.get("name"), str):
            existing = await repos.agents.by_name(ws, body["name"])
        else:
            existing = None
    draft = read_agent(body, previous=existing, mark=mark)
    try:
        async with platform.store.write() as repos:
            applied = await apply_agent(
                repos,
                ws,
                draft,
                agent_id=agent_id,
                existing=existing,
                prune=prune,
            )
    except NameTaken as exc:
        raise _name_taken(exc, draft.name) from None
    return applied


@router.post("", status_code=201, summary="Create an agent (functions may be embedded)")
async def create_agent(
    body: AgentBody, ws: WorkspaceDep, platform: PlatformDep, secret: SecretVariables = None
) -> AgentOut:
    applied = await _apply(
        platform, ws, body, agent_id=None, by_name=False, prune=False, mark=secret or []
    )
    return agent_out(applied.agent)


@router.get("", summary="This workspace's agents, oldest first")
async def list_agents(
    ws: WorkspaceDep,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> AgentList:
    from ...store import BadCursor

    try:
        async with platform.store.read() as repos:
            page = await repos.agents.page(ws, limit=limit, cursor=cursor)
    except BadCursor as exc:
        raise invalid([Problem("query:cursor", str(exc), "pass next_cursor as given")]) from None
    return AgentList(data=[agent_out(a) for a in page.items], next_cursor=page.next_cursor)


_DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "example": AGENT_EXAMPLE}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/import",
    summary="Create or update an agent and its functions from one document",
    openapi_extra=_DOCUMENT_BODY,
)
async def import_agent(request: Request, ws: WorkspaceDep, platform: PlatformDep) -> ImportOut:
    """The body is the agent file (JSON, or YAML with ``Content-Type: application/yaml``), its
    functions embedded. The agent is matched by name; functions by name; functions the document
    no longer lists are deleted. All or nothing."""
    body = _parse_document(await request.body(), request.headers.get("content-type", ""))
    applied = await _apply(platform, ws, body, agent_id=None, by_name=True, prune=True, mark=[])
    return ImportOut(
        agent=agent_out(applied.agent),
        created=applied.created,
        functions=[
            ImportedFunction(name=n, id=i, version=v, change=c) for n, i, v, c in applied.functions
        ],
        problems=[ProblemOut(**p.to_dict()) for p in applied.warnings],
    )


@router.get("/{agent_id}", summary="An agent")
async def get_agent(agent_id: AgentId, ws: WorkspaceDep, platform: PlatformDep) -> AgentOut:
    return agent_out(await load_agent_record(platform, ws, agent_id))


@router.put(
    "/{agent_id}",
    summary="Create or replace an agent under this id",
    responses={201: {"model": AgentOut, "description": "Created"}},
)
async def put_agent(
    agent_id: AgentId,
    body: AgentBody,
    ws: WorkspaceDep,
    platform: PlatformDep,
    response: Response,
    secret: SecretVariables = None,
) -> AgentOut:
    """Replace the agent's settings; with a ``functions`` list, its functions become exactly
    those (matched by name). The id is yours to choose (``agent_abc123``)."""
    applied = await _apply(
        platform,
        ws,
        body,
        agent_id=agent_id,
        by_name=False,
        prune="functions" in body,
        mark=secret or [],
    )
    response.status_code = 201 if applied.created else 200
    return agent_out(applied.agent)


@router.patch("/{agent_id}", summary="Change some of an agent's settings (JSON merge patch)")
async def patch_agent(
    agent_id: AgentId,
    body: AgentBody,
    ws: WorkspaceDep,
    platform: PlatformDep,
    secret: SecretVariables = None,
) -> AgentOut:
    record = await load_agent_record(platform, ws, agent_id)
    if "functions" in body:
        raise invalid(
            [
                Problem(
                    "$.functions",
                    "PATCH changes the agent's settings only",
                    "change functions through /v1/agents/{agent_id}/functions, or PUT the "
                    "whole agent",
                )
            ],
            "agent",
        )
    merged = merge_patch(record.document, body)
    draft = read_agent(merged, previous=record, mark=secret or [])
    try:
        async with platform.store.write() as repos:
            updated = await repos.agents.update(
                ws,
                agent_id,
                name=draft.name,
                document=draft.document,
                secrets=draft.secrets,
                secret_names=draft.secret_names,
            )
    except NameTaken as exc:
        raise _name_taken(exc, draft.name) from None
    if updated is None:
        raise not_found(f"agent {agent_id}")
    return agent_out(updated)


@router.delete("/{agent_id}", status_code=204, summary="Delete an agent and its functions")
async def delete_agent(agent_id: AgentId, ws: WorkspaceDep, platform: PlatformDep) -> Response:
    async with platform.store.write() as repos:
        deleted = await repos.agents.delete(ws, agent_id)
    if not deleted:
        raise not_found(f"agent {agent_id}")
    return Response(status_code=204)


@router.get(
    "/{agent_id}/export",
    summary="The agent as one document (the file `voicefn call` reads)",
    responses={200: {"content": {"application/yaml": {}, "application/json": {}}}},
)
async def export_agent(
    agent_id: AgentId,
    ws: WorkspaceDep,
    platform: PlatformDep,
    format: Literal["yaml", "json"] = "yaml",
    include_secrets: Annotated[
        bool, Query(description="put the real secret values in (they are [secret] otherwise)")
    ] = False,
) -> Response:
    from ..documents import export_document

    record = await load_agent_record(platform, ws, agent_id)
    async with platform.store.read() as repos:
        functions = await repos.functions.all(ws, agent_id)
    doc = export_document(record, functions, include_secrets=include_secrets)
    if format == "json":
        return Response(
            json.dumps(doc, indent=2, ensure_ascii=False), media_type="application/json"
        )
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return Response(text, media_type="application/yaml")


def _parse_document(raw: bytes, content_type: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        if "yaml" in content_type or "text/plain" in content_type:
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise invalid(
            [
                Problem(
                    "$",
                    f"the document cannot be read: {message}",
                    "send JSON, or YAML with Content-Type: application/yaml",
                )
            ],
            "agent",
        ) from None
    if not isinstance(data, dict):
        raise invalid(
            [Problem("$", "an agent document is an object", "send {name:, system_prompt:, ...}")],
            "agent",
        )
    return data


__all__ = ["AGENT_SETTINGS", "router"]
