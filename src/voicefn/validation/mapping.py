"""A post-call function's ``mapping``: alone (its shape, ``call.*`` facts, required parameters
left unfilled) and against the agent (its variables and post-call variables)."""

from __future__ import annotations

from typing import Any

from ..context import SYSTEM_VARIABLES
from ..spec import Function
from .hints import did_you_mean
from .problems import Collector, Path, Problem, Severity, identity
from .sources import (
    CALL_SOURCES,
    TRANSCRIPT,
    SourceType,
    mapping_entry,
    source_shape,
    type_mismatch,
)


def check_mapping(
    mapping: Any,
    phase: Any,
    params: Any,
    variables: set[str],
    out: Collector,
    kind: Any = "http",
) -> None:
    """The mapping's shape, what every document can check alone: parameter names, source roots,
    ``call.*`` names and types, required parameters left unfilled. ``variables.*`` and
    ``post_call.*`` need the agent (see :func:`check_mapping_sources`)."""
    if not isinstance(mapping, dict):
        out.add(
            ("mapping",),
            "mapping must be an object: parameter name -> where its value comes from",
            "write e.g. mapping: {phone: call.from_number, email: post_call.email}",
            mapping if isinstance(mapping, str | int | float | bool) else None,
        )
        return
    if phase != "post_call":
        out.add(
            ("mapping",),
            "mapping fills post-call functions' parameters; the LLM fills an in-call "
            "function's and the call context a pre-call function's",
            "set phase: post_call, or remove mapping",
            phase,
        )
        return
    props = params.get("properties") if isinstance(params, dict) else None
    props = props if isinstance(props, dict) else {}
    # Code receives every mapped value (its data object); a request only declared parameters.
    free = kind in ("javascript", "python") and not props
    for key, raw in mapping.items():
        path: Path = ("mapping", str(key))
        if not free and key not in props:
            hint = did_you_mean(str(key), props)
            out.add(
                path,
                f"{key!r} is not one of the function's parameters",
                f"did you mean {hint!r}? Parameter names must match exactly"
                if hint
                else f"map one of {', '.join(props)}, or declare {key!r} under parameters"
                if props
                else f"declare {key!r} under parameters: a request sends declared ones only",
                key,
            )
            continue
        entry = mapping_entry(raw)
        if isinstance(entry, str):
            out.add(path, "not a mapping value", entry, raw if isinstance(raw, str) else None)
            continue
        if entry.source is None:
            continue
        problem = source_shape(entry.source)
        if problem is not None:
            message, fix = problem
            out.add(path, message, fix, entry.source)
            continue
        if entry.root == "call":
            found = CALL_SOURCES[entry.name or ""]
            mismatch = type_mismatch(found, props.get(key))
            if mismatch:
                out.add(path, f"{entry.source} is {found.describe()}, {mismatch}", _TYPE_FIX, raw)
        elif entry.root == "transcript":
            mismatch = type_mismatch(TRANSCRIPT, props.get(key))
            if mismatch:
                out.add(path, f"transcript is a list of turns or text, {mismatch}", _TYPE_FIX, raw)
    required = params.get("required") if isinstance(params, dict) else None
    filled = {*mapping, *SYSTEM_VARIABLES, *variables}
    for i, name in enumerate(required if isinstance(required, list) else []):
        if isinstance(name, str) and name in props and name not in filled:
            out.add(
                ("parameters", "required", i),
                f"required parameter {name!r} has no mapping, so the function would never run",
                f"map it (mapping: {{{name}: post_call.{name}}}, a call.* fact, a variable or "
                "{value: ...}), or make it optional",
                name,
            )


_TYPE_FIX = "map a source of the parameter's type, or change the parameter's type"


#: The built-in extras under ``post_call.*`` and the switch that turns each on.
_EXTRA_SWITCH = {"summary": "summary", "outcome": "outcome", "outcome_reason": "outcome"}


def check_mapping_sources(
    function: Function,
    *,
    variables: dict[str, SourceType],
    post_call: dict[str, SourceType],
) -> list[Problem]:
    """A post-call function's ``variables.*`` and ``post_call.*`` sources against what the agent
    declares: the call's variables (declared, stored by functions, ``--var``) and its post-call
    variables (with the extras it switched on). Paths are the function document's
    (``$.mapping.<parameter>``)."""
    out = Collector(identity)
    props = function.properties
    for key, raw in function.mapping.items():
        entry = mapping_entry(raw)
        if isinstance(entry, str) or entry.source is None or source_shape(entry.source):
            continue  # reported with the function's own problems
        path: Path = ("mapping", key)
        name = entry.name or ""
        deep = entry.source.count(".") > 1
        if entry.root == "post_call":
            found = post_call.get(name)
            if found is None and name in _EXTRA_SWITCH:
                out.add(
                    path,
                    f"post_call.{name} is a built-in extra that is switched off",
                    f"switch it on in the agent: post_call: {{{_EXTRA_SWITCH[name]}: true}}",
                    entry.source,
                )
                continue
            if found is None:
                hint = did_you_mean(name, post_call)
                out.add(
                    path,
                    f"the agent declares no post-call variable {name!r}",
                    f"did you mean post_call.{hint}?"
                    if hint
                    else "declare it under post_call_variables (name, type, description)"
                    + (f"; declared: {', '.join(post_call)}" if post_call else ""),
                    entry.source,
                )
                continue
        elif entry.root == "variables":
            found = variables.get(name)
            if found is None:
                hint = did_you_mean(name, variables)
                if hint:
                    out.add(
                        path,
                        f"the agent has no variable {name!r}",
                        f"did you mean variables.{hint}? Variable names must match exactly",
                        entry.source,
                    )
                else:
                    out.add(
                        path,
                        f"{name!r} is not one of the agent's variables nor stored by a function: "
                        "every call (or a pre-call function) must set it",
                        f"declare it under variables (with a default), or store it from a "
                        f"function's response (store: {{{name}: ...}})",
                        entry.source,
                        "warning",
                    )
                continue
        else:
            continue
        if deep:
            continue  # a part of an object: its type is not known before the call
        mismatch = type_mismatch(found, props.get(key))
        if mismatch:
            severity: Severity = "error" if entry.root == "post_call" else "warning"
            out.add(
                path,
                f"{entry.source} is {found.describe()}, {mismatch}",
                _TYPE_FIX,
                entry.source,
                severity,
            )
    return out.problems
