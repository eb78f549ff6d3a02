"""An agent's ``functions`` list, loaded: each entry a function file (a path relative to the
agent file), an embedded document, or an ``{mcp: {...}}`` entry expanded into one function per
tool of the server; each with what validating it found (:class:`FunctionEntry`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dialects import Report, is_agent_document, read_file, unreadable, validate
from ..egress import EgressPolicy
from ..spec import Function
from ..validation import FunctionValidationError, Problem
from .agent_checks import kind_of, shown

if TYPE_CHECKING:
    from .agent_validate import AgentReport


@dataclass
class FunctionEntry:
    """One item of an agent's ``functions`` list and what validating it found."""

    index: int
    source: str  #: the path as written, or ``$.functions[i]`` for an embedded document
    reports: list[Report] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)


@dataclass(frozen=True)
class McpLoading:
    """How ``{mcp: ...}`` entries are expanded: with which egress policy, whether a command may
    be started, and whether to contact servers at all (``False``: check the entries only)."""

    egress: EgressPolicy | None
    allow_commands: bool | None
    discover: bool
    values: Mapping[str, Any]


def load_functions(
    raw: Any, base: Path, known: set[str], report: AgentReport, mcp: McpLoading
) -> list[Function]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        fix = "write functions: as a list, one '- path/to/function.json' (or a document) per line"
        if isinstance(raw, str):
            fix = f"write it as a list: functions: [{raw}]"
        report.problems.append(
            Problem("$.functions", f"functions must be a list, not {kind_of(raw)}", fix, shown(raw))
        )
        return []
    functions: list[Function] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            entry = FunctionEntry(i, item)
            functions += _load_file(item, base, known, i, entry, report)
        elif isinstance(item, dict) and "mcp" in item:
            entry = FunctionEntry(i, f"$.functions[{i}]")
            functions += _load_mcp(item, i, base, known, entry, report, mcp)
        elif isinstance(item, dict):
            entry = FunctionEntry(i, f"$.functions[{i}]")
            found = validate(item, variables=known, source=entry.source)
            found.problems = [
                Problem(f"{entry.source}{p.path[1:]}", p.message, p.fix, p.found, p.severity)
                for p in found.problems
            ]
            entry.reports.append(found)
            functions += [r.function for r in entry.reports if r.function is not None]
        else:
            report.problems.append(
                Problem(
                    f"$.functions[{i}]",
                    f"a function is a path to its file or a document, not {kind_of(item)}",
                    "write a path such as functions/check_order.json, or the function itself",
                    shown(item),
                )
            )
            continue
        report.functions.append(entry)
    return functions


def _env_policy() -> EgressPolicy:
    """The egress policy the ``VOICEFN_*`` environment variables describe (the CLI's defaults)."""
    return EgressPolicy.from_strings(
        os.environ.get("VOICEFN_ALLOW", "").split(),
        allow_private_network=os.environ.get("VOICEFN_ALLOW_PRIVATE_NETWORK", "") in ("1", "true"),
        https_only=os.environ.get("VOICEFN_HTTPS_ONLY", "") in ("1", "true"),
    )


def _load_mcp(
    item: dict[str, Any],
    index: int,
    base: Path,
    known: set[str],
    entry: FunctionEntry,
    report: AgentReport,
    mcp: McpLoading,
) -> list[Function]:
    """An ``{mcp: {...}}`` entry: one function per tool of the server (see validate_agent)."""
    from ..integrations.mcp_entry import load_entry, parse_entry

    where = f"$.functions[{index}]"
    for key in item:
        if key != "mcp":
            report.problems.append(
                Problem(
                    f"{where}.{key}",
                    f"unknown key {key!r} next to mcp",
                    f"put it inside mcp: ({key} applies to every tool of the server)",
                )
            )
    data = item["mcp"]
    if isinstance(data, dict) and isinstance(data.get("cwd"), str):
        data = {**data, "cwd": str((base / data["cwd"]).resolve())}
    elif isinstance(data, dict) and data.get("command") is not None:
        data = {**data, "cwd": str(base.resolve())}  # a command runs beside the agent file
    docs: list[dict[str, Any]] = []
    if not mcp.discover:
        server, problems = parse_entry(data)
    else:
        allow = mcp.allow_commands
        if allow is None:
            allow = os.environ.get("VOICEFN_ALLOW_MCP_COMMANDS", "") in ("1", "true")
        try:
            policy = mcp.egress or _env_policy()
        except ValueError as exc:  # a bad VOICEFN_ALLOW entry
            report.problems.append(Problem(f"{where}.mcp", str(exc), "correct VOICEFN_ALLOW"))
            return []
        server, docs, problems = load_entry(
            data, egress=policy, allow_commands=allow, variables=mcp.values
        )
    label = server.label if server is not None else where
    report.problems += [
        Problem(f"{where}{p.path[1:]}", p.message, p.fix, p.found, p.severity) for p in problems
    ]
    for doc in docs:
        tool = doc["action"]["tool"]
        found = validate(doc, "voicefn", variables=known, source=f"{label} tool {tool}")
        found.problems = [
            Problem(
                f"{where}.mcp[{json.dumps(tool)}]{p.path[1:]}",
                p.message,
                p.fix,
                p.found,
                p.severity,
            )
            for p in found.problems
        ]
        entry.reports.append(found)
    return [r.function for r in entry.reports if r.function is not None]


def _load_file(
    item: str, base: Path, known: set[str], index: int, entry: FunctionEntry, report: AgentReport
) -> list[Function]:
    path = base / item
    where = f"$.functions[{index}]"
    try:
        data = read_file(path)
    except OSError as exc:
        hint = unreadable(path, exc).fix
        if not hint.startswith("did you mean"):
            hint = f"check the path: it is relative to the agent file's folder ({base.resolve()})"
        why = exc.strerror or type(exc).__name__
        report.problems.append(
            Problem(where, f"cannot read function file {path.resolve()}: {why}", hint, item)
        )
        return []
    except FunctionValidationError as exc:
        entry.reports.append(Report(None, None, exc.problems, item))
        return []
    docs = data if isinstance(data, list) else [data]
    if is_agent_document(data):
        report.problems.append(
            Problem(where, f"{item} is an agent file, not a function", "list function files", item)
        )
        return []
    for k, doc in enumerate(docs):
        label = item if len(docs) == 1 else f"{item}[{k}]"
        entry.reports.append(validate(doc, variables=known, source=label))
    return [r.function for r in entry.reports if r.function is not None]


def stored_names(raw: Any, base: Path) -> set[str]:
    """The variables the agent's functions store (``store:``), read ahead of validating the
    functions so that their templates, the prompt and mappings may use them."""
    names: set[str] = set()
    for item in raw if isinstance(raw, list) else ():
        docs: Any = item
        if isinstance(item, str):
            try:
                docs = read_file(base / item)
            except (OSError, FunctionValidationError):
                continue
        for doc in docs if isinstance(docs, list) else [docs]:
            store = doc.get("store") if isinstance(doc, dict) else None
            if isinstance(store, dict):
                names.update(str(k) for k in store)
    return names
