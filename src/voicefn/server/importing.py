"""Applying a whole agent document (the file ``voicefn call`` reads) in one transaction.

Used by import (``voicefn push``), ``PUT /v1/agents/{id}`` and ``POST /v1/agents`` with
embedded functions. Everything is validated before anything is written: a document with one bad
function changes nothing. Functions are matched by name; one whose document is unchanged keeps
its version; with ``prune``, functions the document no longer lists are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..dialects import validate
from ..store import AgentRecord, FunctionRecord, Repos, Workspace
from ..validation import Problem
from .documents import AgentDraft, FunctionDraft, read_function
from .errors import ApiError, invalid


@dataclass
class Applied:
    agent: AgentRecord
    created: bool
    #: (name, id, version, change) in document order, then deletions
    functions: list[tuple[str, str, int, str]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _name_of(doc: dict[str, Any]) -> str | None:
    report = validate(doc)
    return report.function.name if report.function is not None else None


def _prefixed(exc: ApiError, index: int) -> ApiError:
    problems = [
        Problem(f"$.functions[{index}]{p.path[1:]}", p.message, p.fix, p.found, p.severity)
        for p in exc.problems
    ]
    return invalid(problems, "agent")


def _same(record: FunctionRecord, draft: FunctionDraft) -> bool:
    return (
        record.name == draft.name
        and record.document == draft.document
        and record.secrets == draft.secrets
        and tuple(record.secret_names) == draft.secret_names
    )


async def apply_agent(
    repos: Repos,
    ws: Workspace,
    draft: AgentDraft,
    *,
    agent_id: str | None,
    existing: AgentRecord | None,
    prune: bool,
) -> Applied:
    """Create or update the agent and sync its functions; raises ApiError (422) on a problem."""
    current: dict[str, FunctionRecord] = {}
    if existing is not None:
        current = {f.name: f for f in await repos.functions.all(ws, existing.id)}
    variables = list((draft.document.get("variables") or {}).keys())
    drafts: list[FunctionDraft] = []
    for i, doc in enumerate(draft.functions or []):
        name = _name_of(doc)
        try:
            drafts.append(
                read_function(doc, None, previous=current.get(name or ""), variables=variables)
            )
        except ApiError as exc:
            raise _prefixed(exc, i) from None
    if existing is None:
        agent = await repos.agents.create(
            ws,
            name=draft.name,
            document=draft.document,
            secrets=draft.secrets,
            secret_names=draft.secret_names,
            agent_id=agent_id,
        )
    else:
        updated = await repos.agents.update(
            ws,
            existing.id,
            name=draft.name,
            document=draft.document,
            secrets=draft.secrets,
            secret_names=draft.secret_names,
        )
        assert updated is not None  # locked in this transaction
        agent = updated
    applied = Applied(agent, existing is None, warnings=list(draft.warnings))
    if draft.functions is None:
        return applied
    for fd in drafts:
        applied.warnings += fd.warnings
        before = current.pop(fd.name, None)
        if before is None:
            rec = await repos.functions.create(
                ws,
                agent.id,
                name=fd.name,
                document=fd.document,
                secrets=fd.secrets,
                secret_names=fd.secret_names,
                dialect=fd.dialect,
            )
            applied.functions.append((rec.name, rec.id, rec.version, "created"))
        elif _same(before, fd):
            applied.functions.append((before.name, before.id, before.version, "unchanged"))
        else:
            changed = await repos.functions.update(
                ws,
                agent.id,
                before.id,
                name=fd.name,
                document=fd.document,
                secrets=fd.secrets,
                secret_names=fd.secret_names,
                dialect=fd.dialect,
            )
            assert changed is not None
            applied.functions.append((changed.name, changed.id, changed.version, "updated"))
    if prune:
        for gone in current.values():
            await repos.functions.delete(ws, agent.id, gone.id)
            applied.functions.append((gone.name, gone.id, gone.version + 1, "deleted"))
    return applied
