"""The Agent: system prompt, functions, variables, welcome message, webhook URL, LLM settings.

An agent file (YAML or JSON) lists or embeds its functions in any dialect::

    name: store-agent
    system_prompt: You are Sam from Acme, speaking to {customer_name}.
    welcome_message: Hi {customer_name}, this is Sam from Acme. How can I help?
    language: en
    variables: {customer_name: there}
    webhook_url: https://hooks.example.com/voicefn
    llm: {model: gpt-4o-mini, base_url: http://localhost:11434/v1, temperature: 0.3}
    functions:
      - functions/check_order_status.json     # a path, relative to this file
      - {name: end_call, description: ..., action: {type: builtin, builtin: end_call}}

:func:`validate_agent` checks an agent and every function in it and never raises; every problem
has the same path / found / fix form as a function's. :func:`load_agent` raises
:class:`~voicefn.validation.FunctionValidationError` listing them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..context import SYSTEM_VARIABLES, CallContext
from ..dialects import Report, is_agent_document, read_file, unreadable, validate
from ..dialects.llm import dump as llm_dump
from ..egress import EgressPolicy
from ..spec import Function
from ..templates import VARIABLE_RE, render_text
from ..validation import (
    FunctionValidationError,
    Problem,
    check_url,
    did_you_mean,
    json_path,
    value_fix,
)
from .postcall_spec import (
    PostCallSettings,
    PostCallVariable,
    check_post_call,
    mapping_problems,
)


class LLMSettings(BaseModel):
    """Any OpenAI-compatible chat-completions endpoint. Unset values come from the environment:
    ``VOICEFN_LLM_MODEL``/``OPENAI_MODEL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    base_url: str | None = None
    #: The *name* of the environment variable holding the key (keys do not belong in files).
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tool_rounds: int = Field(default=5, ge=1, le=20)
    timeout_s: float = Field(default=30.0, gt=0)
    #: Retries of a failed LLM request (the SDK's; each costs the caller time on the line).
    max_retries: int = Field(default=1, ge=0, le=5)

    def resolved_model(self) -> str:
        model = self.model or os.environ.get("VOICEFN_LLM_MODEL") or os.environ.get("OPENAI_MODEL")
        if not model:
            raise ValueError(
                "no LLM model configured: set llm.model in the agent file or VOICEFN_LLM_MODEL"
            )
        return model

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("OPENAI_BASE_URL")

    def endpoint(self) -> str:
        """The chat-completions endpoint requests go to, for messages."""
        base = (self.resolved_base_url() or "https://api.openai.com/v1").rstrip("/")
        return f"{base}/chat/completions"

    def resolved_api_key(self) -> str:
        # Local servers (Ollama, vLLM, LM Studio) accept any key; the SDK insists on one.
        return os.environ.get(self.api_key_env) or "not-needed"


class Agent(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = "agent"
    system_prompt: str = "You are a helpful voice assistant. Keep answers short."
    welcome_message: str | None = None
    language: str = "en"
    variables: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str | None = None
    llm: LLMSettings = Field(default_factory=LLMSettings)
    functions: list[Function] = Field(default_factory=list)
    #: Values extracted from the transcript after hang-up (``post_call.<name>`` in mappings).
    post_call_variables: list[PostCallVariable] = Field(default_factory=list)
    #: The built-in extras: ``{summary: true, outcome: true}``.
    post_call: PostCallSettings = Field(default_factory=PostCallSettings)

    def function(self, name: str) -> Function | None:
        return next((f for f in self.functions if f.name == name), None)

    def call_context(self, context: CallContext | None = None) -> CallContext:
        """The context a call with this agent runs in: the agent's variables under the call's
        own, the agent's name as ``agent_id`` and its webhook URL, unless the call sets them."""
        ctx = context or CallContext()
        return CallContext(
            agent_id=ctx.agent_id or self.name,
            call_sid=ctx.call_sid,
            execution_id=ctx.execution_id,
            from_number=ctx.from_number,
            to_number=ctx.to_number,
            variables={**self.variables, **ctx.variables},
            webhook_url=ctx.webhook_url or self.webhook_url,
            workspace_id=ctx.workspace_id,
        )

    def llm_view(
        self, context: CallContext | None = None, dialect: str = "openai"
    ) -> dict[str, Any]:
        """What the LLM sees at the start of a call: the rendered system prompt, the welcome
        message (the first assistant message) and the in-call functions as tools in ``dialect``,
        parameters the context fills left out. Pre-call functions may still change the prompt."""
        ctx = self.call_context(context)
        variables = ctx.as_variables()
        return {
            "system_prompt": render_text(self.system_prompt, variables),
            "welcome_message": render_text(self.welcome_message, variables)
            if self.welcome_message
            else None,
            "tools": [llm_dump(f, dialect, ctx) for f in self.functions if f.phase == "in_call"],
        }


#: Documented in the README ("Agent files"); the order is the order of that table.
AGENT_KEYS: tuple[str, ...] = tuple(Agent.model_fields)
LLM_KEYS: tuple[str, ...] = tuple(LLMSettings.model_fields)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class FunctionEntry:
    """One item of an agent's ``functions`` list and what validating it found."""

    index: int
    source: str  #: the path as written, or ``$.functions[i]`` for an embedded document
    reports: list[Report] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)


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


@dataclass(frozen=True)
class _McpLoading:
    """How ``{mcp: ...}`` entries are expanded: with which egress policy, whether a command may
    be started, and whether to contact servers at all (``False``: check the entries only)."""

    egress: EgressPolicy | None
    allow_commands: bool | None
    discover: bool
    values: Mapping[str, Any]


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
                f"an agent must be an object of settings, not {_kind(data)}",
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
            problems.append(_unknown((str(key),), AGENT_KEYS, "agent"))
    for key in ("name", "system_prompt", "welcome_message", "language"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(
                Problem(
                    json_path((key,)),
                    f"{key} must be text, not {_kind(value)}",
                    value_fix("string_type", {}, value),
                    value,
                )
            )
    declared = data.get("variables")
    if declared is not None and not isinstance(declared, dict):
        problems.append(
            Problem(
                "$.variables",
                f"variables must be an object of names and default values, not {_kind(declared)}",
                "write one 'name: default value' per line (e.g. customer_name: there)",
                _shown(declared),
            )
        )
        declared = {}
    values = dict(variables) if isinstance(variables, Mapping) else {}
    stored = _stored_names(data.get("functions"), base)
    known = {*SYSTEM_VARIABLES, *(declared or {}), *variables, *stored}
    mcp = _McpLoading(egress, allow_mcp_commands, discover_mcp, {**(declared or {}), **values})
    _check_llm(data.get("llm"), problems)
    if data.get("webhook_url") is not None:
        problems += check_url(data["webhook_url"], ("webhook_url",), "webhook_url")
    for key in ("system_prompt", "welcome_message"):
        if isinstance(data.get(key), str):
            problems += _check_text_variables(key, data[key], known)
    problems += check_post_call(data.get("post_call_variables"), data.get("post_call"))
    functions = _load_functions(data.get("functions"), base, known, report, mcp)
    _check_mappings(data, report, stored, variables)
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
                    _shown(found),
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


def _load_functions(
    raw: Any, base: Path, known: set[str], report: AgentReport, mcp: _McpLoading
) -> list[Function]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        fix = "write functions: as a list, one '- path/to/function.json' (or a document) per line"
        if isinstance(raw, str):
            fix = f"write it as a list: functions: [{raw}]"
        report.problems.append(
            Problem("$.functions", f"functions must be a list, not {_kind(raw)}", fix, _shown(raw))
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
                    f"a function is a path to its file or a document, not {_kind(item)}",
                    "write a path such as functions/check_order.json, or the function itself",
                    _shown(item),
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
    mcp: _McpLoading,
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


def _stored_names(raw: Any, base: Path) -> set[str]:
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


def _check_mappings(
    data: dict[str, Any],
    report: AgentReport,
    stored: set[str],
    given: Iterable[str] | Mapping[str, Any],
) -> None:
    """Post-call functions' ``variables.*`` and ``post_call.*`` sources against the agent's
    declarations; problems go with the function's own (same paths)."""
    for entry in report.functions:
        for found in entry.reports:
            function = found.function
            if function is None:
                continue
            more = mapping_problems(function, data, stored=stored, given=given)
            if entry.source.startswith("$"):  # embedded: paths start at the agent's root
                more = [
                    Problem(f"{entry.source}{p.path[1:]}", p.message, p.fix, p.found, p.severity)
                    for p in more
                ]
            found.problems += more
            if any(p.severity == "error" for p in more):
                found.function = None


def _check_llm(llm: Any, problems: list[Problem]) -> None:
    if llm is None:
        return
    if not isinstance(llm, dict):
        problems.append(
            Problem(
                "$.llm",
                f"llm must be an object of settings, not {_kind(llm)}",
                "write e.g. llm: {model: gpt-4o-mini, temperature: 0.3}",
                _shown(llm),
            )
        )
        return
    for key in llm:
        if key not in LLM_KEYS:
            problem = _unknown(("llm", str(key)), LLM_KEYS, "LLM setting")
            if key in ("api_key", "key", "token"):
                problem = Problem(
                    problem.path,
                    "keys do not belong in agent files",
                    "set api_key_env to the name of the environment variable that holds it "
                    "(default OPENAI_API_KEY)",
                )
            problems.append(problem)
    if llm.get("base_url") is not None:
        problems += check_url(llm["base_url"], ("llm", "base_url"), "llm.base_url")
    env = llm.get("api_key_env")
    if isinstance(env, str) and not _ENV_NAME.fullmatch(env):
        problems.append(
            Problem(
                "$.llm.api_key_env",
                "api_key_env is the *name* of an environment variable, and this is not one",
                "write the variable's name, e.g. OPENAI_API_KEY, and export the key in it",
                None,  # it may be the key itself: never echo it
            )
        )
    try:
        LLMSettings.model_validate({k: v for k, v in llm.items() if k in LLM_KEYS})
    except ValidationError as exc:
        for err in exc.errors():
            loc = ("llm", *(p for p in err["loc"] if isinstance(p, str | int)))
            if loc == ("llm", "api_key_env"):
                continue
            found = err.get("input")
            problems.append(
                Problem(
                    json_path(loc),
                    err["msg"].rstrip("."),
                    value_fix(err["type"], err.get("ctx") or {}, found),
                    _shown(found),
                )
            )


def _check_text_variables(key: str, text: str, known: set[str]) -> list[Problem]:
    out: list[Problem] = []
    for m in VARIABLE_RE.finditer(text):
        name = m.group("name")
        if name in known:
            continue
        hint = did_you_mean(name, known)
        fix = (
            f"did you mean {{{hint}}}? Variable names must match exactly"
            if hint
            else f"declare it under variables (with a default), or pass it per call (--var {name}=...)"
        )
        out.append(
            Problem(
                f"$.{key}",
                f"{{{name}}} is not a system variable or one of the agent's variables; "
                "it is said as written unless the call or a pre-call function sets it",
                fix,
                m.group(0),
                "warning",
            )
        )
    return out


def _unknown(path: tuple[str, ...], known: Iterable[str], what: str) -> Problem:
    key = path[-1]
    hint = did_you_mean(key, known)
    fix = f"did you mean {hint!r}?" if hint else f"use one of {', '.join(known)}"
    return Problem(json_path(path), f"unknown {what} key {key!r}", fix)


def _kind(value: Any) -> str:
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true/false",
        list: "a list",
        dict: "an object",
        type(None): "empty",
    }.get(type(value), type(value).__name__)


def _shown(value: Any) -> Any:
    if isinstance(value, dict | list) and len(repr(value)) > 200:
        return None
    return value
