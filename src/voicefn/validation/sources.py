"""Where a post-call mapping's values come from: the sources (``call.*``, ``variables.*``,
``post_call.*``, ``transcript``), a mapping entry read, and whether a source's type fits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .hints import did_you_mean


@dataclass(frozen=True, slots=True)
class SourceType:
    """What a mapping source holds: a JSON Schema type (``None``: not known before the call),
    the allowed values of an enum, the item type of a list."""

    type: str | None = None
    enum: tuple[Any, ...] | None = None
    items: str | None = None

    def describe(self) -> str:
        if self.enum is not None:
            return "one of " + ", ".join(json.dumps(v) for v in self.enum)
        if self.type == "array" and self.items:
            return f"a list of {self.items}s"
        return {
            "string": "text",
            "integer": "an integer",
            "number": "a number",
            "boolean": "true/false",
            "array": "a list",
            "object": "an object",
            "transcript": "the transcript",
        }.get(self.type or "", "a value")


#: The facts of a finished call a post-call mapping reads as ``call.<name>``.
CALL_SOURCES: dict[str, SourceType] = {
    "id": SourceType("string"),
    "call_sid": SourceType("string"),
    "execution_id": SourceType("string"),
    "agent_id": SourceType("string"),
    "from_number": SourceType("string"),
    "to_number": SourceType("string"),
    "language": SourceType("string"),
    "started_at": SourceType("string"),
    "ended_at": SourceType("string"),
    "duration_s": SourceType("number"),
    "ended_by": SourceType("string", ("caller", "agent", "transfer", "system")),
    "transfer_number": SourceType("string"),
}
#: The roots a mapping source starts with.
SOURCE_ROOTS: tuple[str, ...] = ("call", "variables", "post_call", "transcript")
TRANSCRIPT = SourceType("transcript")


@dataclass(frozen=True, slots=True)
class MappingEntry:
    """One parameter's mapping: a source (``post_call.email``) or a static value."""

    source: str | None = None
    value: Any = None
    default: Any = None
    has_default: bool = False

    @property
    def root(self) -> str:
        return (self.source or "").split(".", 1)[0]

    @property
    def name(self) -> str | None:
        """The second part of the source (``email`` in ``post_call.email``)."""
        parts = (self.source or "").split(".")
        return parts[1] if len(parts) > 1 else None


def mapping_entry(raw: Any) -> MappingEntry | str:
    """A mapping value read; a message saying what is wrong with it otherwise."""
    if isinstance(raw, str):
        return MappingEntry(source=raw.strip())
    if raw is None or isinstance(raw, bool | int | float):
        return MappingEntry(value=raw)
    if isinstance(raw, dict):
        keys = set(raw)
        if keys == {"value"}:
            return MappingEntry(value=raw["value"])
        if "source" in keys and keys <= {"source", "default"}:
            if not isinstance(raw["source"], str):
                return "source must be text, e.g. post_call.email"
            return MappingEntry(
                source=raw["source"].strip(),
                default=raw.get("default"),
                has_default="default" in raw,
            )
        return (
            "an object here is {value: ...} (a static value) or {source: ..., default: ...}, "
            f"not one with {', '.join(sorted(map(str, keys))) or 'no keys'}"
        )
    return "write a source such as post_call.email, or a static value as {value: ...}"


def source_shape(source: str) -> tuple[str, str] | None:
    """What is wrong with a source's spelling, before knowing the agent: (message, fix)."""
    parts = source.split(".")
    root = parts[0]
    if root not in SOURCE_ROOTS:
        hint = did_you_mean(root, SOURCE_ROOTS)
        if hint is None and "." not in source:
            return (
                f"{source!r} is not a source; text here names where the value comes from",
                f"for a fixed text write {{value: {json.dumps(source)}}}; sources start with "
                + ", ".join(f"{r}." if r != "transcript" else r for r in SOURCE_ROOTS),
            )
        return (
            f"unknown source {source!r}",
            f"did you mean {'.'.join([hint, *parts[1:]])}?"
            if hint
            else "sources start with call., variables., post_call. or are transcript",
        )
    if root == "transcript":
        if len(parts) > 1:
            return ("transcript has no parts", "map transcript itself (a list of turns, or text)")
        return None
    if len(parts) < 2 or not parts[1]:
        return (f"{source!r} names no value", f"write {root}.<name>")
    if any(not p for p in parts):
        return (f"{source!r} has an empty part", "write names separated by single dots")
    if root == "call":
        name = parts[1]
        if name not in CALL_SOURCES:
            hint = did_you_mean(name, CALL_SOURCES)
            return (
                f"the call has no fact named {name!r}",
                f"did you mean call.{hint}?"
                if hint
                else f"use one of call.{', call.'.join(CALL_SOURCES)}",
            )
        if len(parts) > 2:
            return (f"call.{name} has no parts", f"map call.{name} itself")
    return None


def type_mismatch(source: SourceType, schema: Any) -> str | None:
    """Why a value of ``source`` cannot fill a parameter declared as ``schema`` (None: it can).

    Unknown types never mismatch. Numbers and true/false become text for a string parameter;
    an integer fills a number; the transcript fills text or a list."""
    if not isinstance(schema, dict) or source.type is None:
        return None
    declared = schema.get("type")
    wanted = (
        {declared}
        if isinstance(declared, str)
        else {t for t in declared if isinstance(t, str)}
        if isinstance(declared, list)
        else set()
    )
    wanted.discard("null")
    name = "/".join(sorted(wanted))
    if wanted:
        kind = source.type
        fits = (
            kind in wanted
            or (kind == "integer" and "number" in wanted)
            or (kind in ("integer", "number", "boolean") and "string" in wanted)
            or (kind == "transcript" and bool(wanted & {"string", "array"}))
        )
        if not fits:
            return f"but the parameter is declared as {name}"
        if kind == "array" and source.items and "array" in wanted:
            items = schema.get("items")
            item_type = items.get("type") if isinstance(items, dict) else None
            widened = source.items == "integer" and item_type == "number"
            if isinstance(item_type, str) and item_type != source.items and not widened:
                return f"but the parameter is a list of {item_type}s"
    allowed = schema.get("enum")
    if isinstance(allowed, list) and source.enum is not None:
        extra = [v for v in source.enum if v not in allowed]
        if extra:
            return (
                f"and {', '.join(json.dumps(v) for v in extra)} "
                "is not among the parameter's enum values"
            )
    return None
