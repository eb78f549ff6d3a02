"""Validating an agent: :func:`validate_agent` checks an agent and every function in it and never
raises (:class:`AgentReport`); :func:`load_agent` raises
:class:`~voicefn.validation.FunctionValidationError` listing every problem."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..context import SYSTEM_VARIABLES
from ..dialects import read_file, unreadable
from ..egress import EgressPolicy
from ..validation import FunctionValidationError, Problem, check_url, json_path, value_fix
from .agent_checks import (
    check_llm,
    check_mappings,
    check_text_variables,
    kind_of,
    shown,
    unknown_key,
)
from .agent_functions import FunctionEntry, McpLoading, load_functions, stored_names
from .agent_model import AGENT_KEYS, LLM_KEYS, Agent
from .postcall_spec import check_post_call


@dataclass
class AgentReport:
    """The outcome of validating an agent: its own problems and each function's report."""

    source: str | None
    agent: Agent | None
    problems: list[Problem] = field(default_factory=list)
    functions: list[FunctionEntry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.agent is not None and not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.all_problems() if p.severity == "error"]

    def all_problems(self) -> list[Problem]:
        """Every problem, function problems with their entry in front of their path."""
        out = list(self.problems)
        for entry in self.functions:
            for i, report in enumerate(entry.reports):
                where = f"$.functions[{entry.index}]"
                if entry.source != where:
                    where += f" ({entry.source}"
                    where += f"[{i}])" if len(entry.reports) > 1 else ")"
                for p in report.problems:
                    # An embedded document's paths already start at $.functions[i].
                    path = p.path if entry.source.startswith("$") else f"{where} {p.path}"
                    out.append(Problem(path, p.message, p.fix, p.found, p.severity))
        return out


def validate_agent(
    source: str | Path | Mapping[str, Any],
    *,
    variables: Iterable[str] | Mapping[str, Any] = (),
    egress: EgressPolicy | None = None,
    allow_mcp_commands: bool | None = None,
    discover_mcp: bool = True,
) -> AgentReport:
    """Check an agent file (or parsed document) and every function in it; never raises.

    ``variables`` names variables every call provides (``--var``), beyond the agent's own (a
    mapping also gives their values, for the headers of MCP servers).

    An ``{mcp: {...}}`` entry of ``functions`` is expanded into one function per tool the server
    lists, so loading it connects to the server: through ``egress`` (default: the policy the
    ``VOICEFN_ALLOW``, ``VOICEFN_ALLOW_PRIVATE_NETWORK`` and ``VOICEFN_HTTPS_ONLY`` environment
    variables describe); a ``command`` server starts only when ``allow_mcp_commands`` (default:
    ``VOICEFN_ALLOW_MCP_COMMANDS=1``). ``discover_mcp=False`` checks the entries and adds none of
    their tools.
    """
    base = Path.cwd()
    label: str | None = None
    if isinstance(source, str | Path):
        path = Path(source)
        base, label = path.parent, str(path)
        try:
            data: Any = read_file(path)
        except FunctionValidationError as exc:
            return AgentReport(label, None, exc.problems)
        except OSError as exc:
            return AgentReport(label, None, [unreadable(path, exc)])
    else:
        data = dict(source)
    report = AgentReport(label, None)
    if not isinstance(data, dict):
        report.problems.append(
            Problem(
                "$",
                f"an agent must be an object of settings, not {kind_of(data)}",
                "write name:, system_prompt:, functions: ... at the top level",
            )
        )
        return report
    problems = report.problems
    for key in data:
        if key in LLM_KEYS and key not in AGENT_KEYS:
            problems.append(
                Problem(
                    json_path((str(key),)),
                    f"{key!r} is an LLM setting",
                    f"move it under llm: (llm: {{{key}: ...}})",
                )
            )
        elif key not in AGENT_KEYS:
            problems.append(unknown_key((str(key),), AGENT_KEYS, "agent"))
    for key in ("name", "system_prompt", "welcome_message", "language"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(
                Problem(
                    json_path((key,)),
                    f"{key} must be text, not {kind_of(value)}",
                    value_fix("string_type", {}, value),
                    value,
                )
            )
    declared = data.get("variables")
    if declared is not None and not isinstance(declared, dict):
        problems.append(
            Problem(
                "$.variables",
                f"variables must be an object of names and default values, not {kind_of(declared)}",
                "write one 'name: default value' per line (e.g. customer_name: there)",
                shown(declared),
            )
        )
        declared = {}
    values = dict(variables) if isinstance(variables, Mapping) else {}
    stored = stored_names(data.get("functions"), base)
    known = {*SYSTEM_VARIABLES, *(declared or {}), *variables, *stored}
    mcp = McpLoading(egress, allow_mcp_commands, discover_mcp, {**(declared or {}), **values})
    check_llm(data.get("llm"), problems)
    if data.get("webhook_url") is not None:
        problems += check_url(data["webhook_url"], ("webhook_url",), "webhook_url")
    for key in ("system_prompt", "welcome_message"):
        if isinstance(data.get(key), str):
            problems += check_text_variables(key, data[key], known)
    problems += check_post_call(data.get("post_call_variables"), data.get("post_call"))
    functions = load_functions(data.get("functions"), base, known, report, mcp)
    check_mappings(data, report, stored, variables)
    names = [f.name for f in functions]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(
            Problem(
                "$.functions",
                f"two functions are named {dup!r}",
                "rename one: the LLM calls functions by name",
                dup,
            )
        )
    if any(p.severity == "error" for p in report.all_problems()):
        return report
    try:
        report.agent = Agent.model_validate({**data, "functions": functions})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            found = err.get("input")
            if err["type"] == "extra_forbidden":
                continue  # reported above with a did-you-mean
            problems.append(
                Problem(
                    json_path(loc),
                    "required field is missing"
                    if err["type"] == "missing"
                    else err["msg"].rstrip("."),
                    value_fix(err["type"], err.get("ctx") or {}, found),
                    shown(found),
                )
            )
    return report


def load_agent(
    source: str | Path | dict[str, Any],
    *,
    variables: Iterable[str] | Mapping[str, Any] = (),
    egress: EgressPolicy | None = None,
    allow_mcp_commands: bool | None = None,
) -> Agent:
    """Load an agent from a YAML/JSON file or a dict; raises FunctionValidationError (a
    ValueError) listing every problem. MCP entries: see :func:`validate_agent`."""
    report = validate_agent(
        source, variables=variables, egress=egress, allow_mcp_commands=allow_mcp_commands
    )
    if report.agent is None or not report.ok:
        raise FunctionValidationError(report.all_problems(), report.source)
    return report.agent
