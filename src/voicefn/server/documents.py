"""Function and agent documents between the caller and the store.

In: any dialect the engine loads, validated by the engine (every problem at once, paths in the
caller's dialect), secrets masked and kept apart. Out: canonical or any dialect, secrets masked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..dialects import LOADABLE, dump, validate
from ..dialects import code as code_dialect
from ..spec import Function
from ..store import AgentRecord, FunctionRecord, VersionRecord
from ..store.secrets import MASK, Place, agent_places, function_places, seal, unseal
from ..validation import Problem, json_path
from .errors import invalid

#: The settings an agent has besides its functions (the agent file's other keys).
AGENT_SETTINGS = (
    "name",
    "system_prompt",
    "welcome_message",
    "language",
    "variables",
    "webhook_url",
    "llm",
    "post_call_variables",
    "post_call",
)


@dataclass(frozen=True)
class FunctionDraft:
    """A validated function, ready to store: the canonical document with secrets masked."""

    name: str
    document: dict[str, Any]
    secrets: dict[str, Any]
    secret_names: tuple[str, ...]
    dialect: str
    warnings: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class AgentDraft:
    name: str
    document: dict[str, Any]
    secrets: dict[str, Any]
    secret_names: tuple[str, ...]
    #: the embedded function documents, when the body has a ``functions`` list
    functions: list[dict[str, Any]] | None
    warnings: list[Problem] = field(default_factory=list)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_json(value: Any, path: tuple[str | int, ...] = ()) -> list[Problem]:
    """What JSON allows but a stored document must not hold: NUL characters (PostgreSQL text
    refuses them) and numbers that are not finite (NaN, Infinity)."""
    out: list[Problem] = []
    if isinstance(value, str):
        if "\x00" in value:
            out.append(Problem(json_path(path), "contains a NUL character", "remove it"))
        elif not _is_unicode(value):
            out.append(
                Problem(json_path(path), "is not valid Unicode (a lone surrogate)", "remove it")
            )
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            out.append(Problem(json_path(path), "is not a finite number", "use a number", None))
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key) or not _is_unicode(str(key)):
                out.append(
                    Problem(
                        json_path(path),
                        "a key contains a NUL character or a lone surrogate",
                        "remove it",
                    )
                )
            out += check_json(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += check_json(item, (*path, i))
    return out


def _locate_path(body: Any, dialect: str, place: Place) -> str:
    module = LOADABLE.get(dialect)
    if module is None:
        return json_path(place)
    locate = module.locate_for(body) if hasattr(module, "locate_for") else module.locate
    return json_path(locate(place))


def _missing_secret(path: str) -> Problem:
    return Problem(
        path,
        f"this secret is written as {MASK} but there is no stored value to keep",
        "write the real value (a stored secret is kept only when its place is unchanged)",
    )


def read_function(
    body: Any,
    dialect: str | None,
    *,
    previous: FunctionRecord | VersionRecord | None = None,
    mark: Sequence[str] = (),
    variables: Iterable[str] = (),
) -> FunctionDraft:
    """Validate a function document in any loadable dialect; raise a 422 listing every problem."""
    odd = check_json(body)
    if odd:
        raise invalid(odd, dialect)
    report = validate(body, dialect, variables=variables)
    if report.function is None or report.errors:
        raise invalid(report.problems, report.dialect or dialect)
    used = report.dialect or "voicefn"
    canonical = report.function.to_dict()
    names = tuple(dict.fromkeys([*(previous.secret_names if previous else ()), *mark]))
    masked, secrets, missing = seal(
        canonical, function_places(canonical, names), previous.secrets if previous else {}
    )
    if missing:
        raise invalid([_missing_secret(_locate_path(body, used, p)) for p in missing], used)
    return FunctionDraft(report.function.name, masked, secrets, names, used, report.warnings)


def render_function(document: dict[str, Any], dialect: str) -> tuple[dict[str, Any], list[str]]:
    """A stored (masked) canonical document in ``dialect``; what that dialect cannot carry."""
    function = Function.model_validate(document)
    try:
        return dump(function, dialect)
    except ValueError as exc:
        raise invalid(
            [Problem("query:dialect", str(exc), "ask for this function in another dialect")],
            dialect,
        ) from None


def patch_base(record: FunctionRecord, dialect: str | None) -> tuple[dict[str, Any], str]:
    """The document a PATCH applies to: the function in the caller's dialect (by default the
    one it was last written in). Refused when that dialect would drop some of its fields."""
    name = dialect or (record.dialect if record.dialect in LOADABLE else "voicefn")
    if name not in LOADABLE:
        raise invalid(
            [
                Problem(
                    "query:dialect",
                    f"{name} is what an LLM sees; it cannot change a function",
                    "PATCH in voicefn, bolna, call2me or callkaro",
                    name,
                )
            ],
            name,
        )
    doc, lost = render_function(record.document, name)
    if lost:
        raise invalid(
            [
                Problem(
                    "query:dialect",
                    f"this function has fields {name} cannot carry ({', '.join(lost)}); "
                    "patching in it would drop them",
                    "PATCH with ?dialect=voicefn",
                    name,
                )
            ],
            name,
        )
    return doc, name


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: ``null`` removes a key, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def is_code(body: Any) -> bool:
    return isinstance(body, dict) and code_dialect.detect(body) is not None


# ---------------------------------------------------------------------------- agents


def read_agent(
    body: Any, *, previous: AgentRecord | None = None, mark: Sequence[str] = ()
) -> AgentDraft:
    """Validate an agent document (the agent file's format, functions embedded)."""
    from ..runtime.agent import validate_agent

    if not isinstance(body, dict):
        raise invalid(
            [Problem("$", "an agent is a JSON object", "send {name:, system_prompt:, ...}")],
            "agent",
        )
    odd = check_json(body)
    if odd:
        raise invalid(odd, "agent")
    functions = body.get("functions")
    if isinstance(functions, list):
        paths = [
            Problem(
                f"$.functions[{i}]",
                "the API takes each function's document, not a path to its file",
                "embed the function's document (`voicefn push` does this for you)",
                item,
            )
            for i, item in enumerate(functions)
            if not isinstance(item, dict)
        ]
        paths += [
            Problem(
                f"$.functions[{i}].mcp",
                "the API stores functions, not MCP servers to ask for their tools",
                "list the server's tools as functions first (`voicefn push` sends what "
                "`voicefn tools` shows for the file)",
            )
            for i, item in enumerate(functions)
            if isinstance(item, dict) and "mcp" in item
        ]
        if paths:
            raise invalid(paths, "agent")
    # Never contact an MCP server or start a command while validating a tenant's document.
    report = validate_agent(body, discover_mcp=False, allow_mcp_commands=False)
    if report.agent is None or not report.ok:
        raise invalid(report.all_problems(), "agent")
    agent = report.agent
    settings = agent.model_dump(mode="json", include=set(AGENT_SETTINGS))
    names = tuple(dict.fromkeys([*(previous.secret_names if previous else ()), *mark]))
    masked, secrets, missing = seal(
        settings, agent_places(settings, names), previous.secrets if previous else {}
    )
    if missing:
        raise invalid([_missing_secret(json_path(p)) for p in missing], "agent")
    warnings = [p for p in report.all_problems() if p.severity == "warning"]
    return AgentDraft(
        agent.name,
        masked,
        secrets,
        names,
        [dict(f) for f in functions] if isinstance(functions, list) else None,
        warnings,
    )


def agent_document(record: AgentRecord) -> dict[str, Any]:
    """The agent's settings as the caller wrote them (secrets masked), for PATCH."""
    return dict(record.document)


def export_document(
    agent: AgentRecord, functions: Sequence[FunctionRecord], *, include_secrets: bool
) -> dict[str, Any]:
    """The agent file ``voicefn call`` reads: settings, then the functions embedded (canonical)."""
    settings = unseal(agent.document, agent.secrets) if include_secrets else agent.document
    doc = _tidy(settings, ("llm",))
    doc["functions"] = [
        _tidy(unseal(f.document, f.secrets) if include_secrets else f.document, ("action",))
        for f in functions
    ]
    return doc


def _tidy(document: dict[str, Any], nested: tuple[str, ...]) -> dict[str, Any]:
    """Drop unset (null) settings, at the top level and in ``nested`` objects: every one of them
    defaults to null. Values inside parameters' JSON Schemas are left as they are."""
    out = {k: v for k, v in document.items() if v is not None}
    for key in nested:
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if v is not None}
    return out
