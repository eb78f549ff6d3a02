"""A post-call function's values: each mapped parameter from its source (``call.*``,
``variables.*``, ``post_call.*``, ``transcript``), shaped for its parameter (:func:`resolve`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..context import CallContext
from ..spec import Function, JavaScriptAction, PythonAction
from ..validation import mapping_entry
from .postcall_call import FinishedCall
from .postcall_extract import Extraction


@dataclass
class Resolved:
    """A post-call function's values: what it runs with, what could not be filled."""

    arguments: dict[str, Any]
    context: CallContext
    #: ``(parameter, source, why)`` for required parameters left without a value
    missing: list[tuple[str, str, str]] = field(default_factory=list)


def _dig(value: Any, parts: Sequence[str]) -> tuple[bool, Any]:
    for part in parts:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def transcript_text(transcript: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"{t.get('role', '?')}: {t.get('text', '')}" for t in transcript)


def _lookup(
    source: str, call: FinishedCall, extraction: Extraction
) -> tuple[bool, Any, str | None]:
    """(found, value, why not) for a source."""
    parts = source.split(".")
    root, rest = parts[0], parts[1:]
    if root == "transcript":
        return True, call.transcript, None
    if root == "call":
        value = call.facts().get(rest[0])
        return value is not None, value, None if value is not None else f"the call has no {source}"
    if root == "variables":
        found, value = _dig(call.variables, rest)
        if not found or value is None:
            return False, None, f"the call has no variable {rest[0]}"
        return True, value, None
    if root == "post_call":
        name = rest[0]
        result = extraction.fields.get(name)
        if result is None:
            why = extraction.error or extraction.skipped or "it was not extracted"
            return False, None, f"{source}: {why}"
        if result.status != "ok":
            return (
                False,
                None,
                f"{source} is {result.status}" + (f" ({result.reason})" if result.reason else ""),
            )
        found, value = _dig(result.value, rest[1:])
        return found, value, None if found else f"{source} has no such part"
    return False, None, f"unknown source {source}"


def _fit(value: Any, schema: Any) -> Any:
    """A value shaped for its parameter: text for a string parameter, the transcript as text
    or a list of turns."""
    declared = schema.get("type") if isinstance(schema, dict) else None
    wanted = {declared} if isinstance(declared, str) else set(declared or ())
    turns = isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]
    if turns and "string" in wanted and "array" not in wanted:
        return transcript_text(value)
    if "string" in wanted and len(wanted - {"null"}) == 1:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
    return value


def resolve(function: Function, call: FinishedCall, extraction: Extraction) -> Resolved:
    """A post-call function's arguments and context.

    With a ``mapping``: each mapped parameter from its source (a missing value is left out, or
    takes the mapping's ``default``; a missing *required* one is listed in ``missing``: the
    function is then not run). Code functions also get the whole call data (``call``,
    ``post_call``, ``transcript``, ``executions``; ``variables`` come from the context), as
    without a mapping, where every function gets that call data as its arguments."""
    facts = call.facts()
    whole = {
        "call": facts,
        "post_call": extraction.values,
        "transcript": call.transcript,
        "executions": [
            {"function": e.get("function"), "ok": e.get("ok"), "content": e.get("content", "")}
            for e in call.executions
        ],
    }
    if not function.mapping:
        return Resolved(dict(whole), call.context())
    props = function.properties
    values: dict[str, Any] = {}
    missing: list[tuple[str, str, str]] = []
    for name, raw in function.mapping.items():
        entry = mapping_entry(raw)
        if isinstance(entry, str):  # refused by validation; never sent half-understood
            missing.append((name, str(raw), entry))
            continue
        if entry.source is None:
            values[name] = entry.value
            continue
        found, value, why = _lookup(entry.source, call, extraction)
        if found:
            values[name] = _fit(value, props.get(name))
        elif entry.has_default:
            values[name] = entry.default
        elif name in function.required:
            missing.append((name, entry.source, why or "no value"))
    code = isinstance(function.action, JavaScriptAction | PythonAction)
    arguments = {**whole, **values} if code else values
    return Resolved(arguments, call.context(hide=list(function.mapping)), missing)
