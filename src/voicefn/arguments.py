"""Binding the LLM's arguments to a function: parse, fill from context, coerce, validate.

The result either is the values to render the request with, or an :class:`ArgumentError` that
becomes a result telling the LLM what to ask the caller; nothing is sent in that case.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from ._cache import PerObjectCache
from .context import CallContext
from .spec import Function

_INT_RE = re.compile(r"[+-]?\d+")


@dataclass(slots=True)
class Bound:
    """Arguments ready for rendering: the LLM's values plus the ones the call context provides."""

    values: dict[str, Any]
    from_context: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


class ArgumentError(Exception):
    """The LLM's arguments cannot be used. ``code`` is ``missing_arguments`` or
    ``invalid_arguments``; ``detail`` is written for the LLM (it may be read to a caller)."""

    def __init__(self, code: str, detail: str, *, missing: list[str] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.missing = missing or []

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.missing:
            out["missing"] = self.missing
        return out


@dataclass(frozen=True, slots=True)
class _Plan:
    validator: Draft202012Validator
    properties: dict[str, Any]
    required: tuple[str, ...]
    #: name -> (python types, enum or None) when every property is a plain typed scalar:
    #: then a value that passes isinstance needs no full JSON Schema validation.
    simple: dict[str, tuple[tuple[type, ...], tuple[Any, ...] | None]] | None


_SIMPLE_KEYS = frozenset({"type", "description", "enum", "default", "title", "examples"})
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _simple_checks(
    props: dict[str, Any],
) -> dict[str, tuple[tuple[type, ...], tuple[Any, ...] | None]] | None:
    checks = {}
    for name, schema in props.items():
        if not isinstance(schema, dict) or not set(schema) <= _SIMPLE_KEYS:
            return None
        kind = schema.get("type")
        if not isinstance(kind, str) or kind not in _PY_TYPES:
            return None
        enum = schema.get("enum")
        checks[name] = (_PY_TYPES[kind], tuple(enum) if isinstance(enum, list) else None)
    return checks


def _passes_simple(
    values: dict[str, Any], checks: dict[str, tuple[tuple[type, ...], tuple[Any, ...] | None]]
) -> bool:
    for name, value in values.items():
        check = checks.get(name)
        if check is None:
            continue  # a post-call function's extra call data: not part of the schema
        types, enum = check
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return False
        if enum is not None and value not in enum:
            return False
    return True


def _build_plan(function: Function) -> _Plan:
    schema = dict(function.parameters)
    schema.pop("required", None)  # missing values are reported by us, with what to ask for
    props = function.properties
    return _Plan(
        Draft202012Validator(schema), props, tuple(function.required), _simple_checks(props)
    )


_plan: PerObjectCache[Function, _Plan] = PerObjectCache(_build_plan)


def parse_arguments(raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The LLM's arguments as an object. Raises ArgumentError for malformed JSON."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = _DECODER.decode(raw)
    except json.JSONDecodeError as exc:
        raise ArgumentError(
            "invalid_arguments",
            f"The arguments are not valid JSON ({exc.msg} at position {exc.pos}). "
            "Call the function again with a JSON object of arguments.",
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ArgumentError(
            "invalid_arguments", "The arguments must be a JSON object. Call the function again."
        )
    return value


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


# One decoder for every call (json.loads(..., parse_constant=...) builds a new one each time).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _coerce(value: Any, schema: Any) -> Any:
    """Repair the common LLM slips ("5" for 5, "true" for true, 12345 for "12345")."""
    if not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    if kind == "integer":
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            return int(value.strip())
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "number":
        if isinstance(value, str):
            try:
                return float(value.strip()) if "." in value or "e" in value.lower() else int(value)
            except ValueError:
                return value
    elif kind == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    elif kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _describe(name: str, schema: Any) -> str:
    desc = schema.get("description") if isinstance(schema, dict) else None
    return f"{name} ({desc})" if desc else name


def bind(
    function: Function,
    raw: str | Mapping[str, Any] | None,
    context: CallContext | None = None,
) -> Bound:
    """Turn the LLM's raw arguments into the values a request is rendered with."""
    plan = _plan(function)
    given = parse_arguments(raw)
    values: dict[str, Any] = {}
    bound = Bound(values)
    props = plan.properties
    # Post-call functions get the call data from the engine (not from an LLM): all of it.
    keep_extra = function.phase == "post_call"
    for name, value in given.items():
        if name not in props:
            if keep_extra:
                values[name] = value
            else:
                bound.ignored.append(name)
        elif value is not None:
            values[name] = _coerce(value, props[name])
    if context is not None:
        for name in props:
            found, value = context.lookup(name)
            if found:  # the call knows it: the LLM neither asks for it nor overrides it
                values[name] = value
                bound.from_context.append(name)
    infinite = [name for name, value in values.items() if not _finite(value)]
    if infinite:
        raise ArgumentError(
            "invalid_arguments",
            f"Nothing was sent. {', '.join(infinite)}: numbers must be finite. Call again with real values.",
        )
    missing = [name for name in plan.required if name not in values]
    if missing:
        wanted = "; ".join(_describe(n, props.get(n)) for n in missing)
        raise ArgumentError(
            "missing_arguments",
            f"Nothing was sent. Ask the caller for: {wanted}. "
            f"Then call {function.name} again with every required value.",
            missing=missing,
        )
    if plan.simple is not None and _passes_simple(values, plan.simple):
        return bound
    errors = sorted(plan.validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if errors:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.absolute_path) or 'arguments'}: {e.message}"
            for e in errors[:5]
        )
        raise ArgumentError(
            "invalid_arguments",
            f"Nothing was sent. Invalid arguments: {detail}. "
            "Correct these values (ask the caller if needed) and call again.",
        )
    return bound
