"""The ``parameters`` JSON Schema: an object with typed, described properties; ``required``
naming declared ones; anything unusual checked against the JSON Schema meta-schema."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..spec import PARAMETER_TYPES
from .hints import did_you_mean
from .problems import Collector, json_path


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_SIMPLE_TYPES = frozenset({*PARAMETER_TYPES, "null"})
#: Keywords whose values this module can vouch for without the meta-schema; anything else (or a
#: value of an unexpected shape) goes through jsonschema, which says exactly what is wrong.
_PLAIN: dict[str, Callable[[Any], bool]] = {
    "type": lambda v: (
        (isinstance(v, str) and v in _SIMPLE_TYPES)
        or (
            isinstance(v, list)
            and all(isinstance(t, str) and t in _SIMPLE_TYPES for t in v)
            and len(set(v)) == len(v)
        )
    ),
    "description": _is_str,
    "title": _is_str,
    "format": _is_str,
    "pattern": _is_str,
    "default": lambda v: True,
    "enum": lambda v: isinstance(v, list),
    "const": lambda v: True,
    "examples": lambda v: isinstance(v, list),
    "required": lambda v: (
        isinstance(v, list) and all(isinstance(x, str) for x in v) and len(set(v)) == len(v)
    ),
    "minimum": _is_number,
    "maximum": _is_number,
    "exclusiveMinimum": _is_number,
    "exclusiveMaximum": _is_number,
    "minLength": _is_count,
    "maxLength": _is_count,
    "minItems": _is_count,
    "maxItems": _is_count,
    "uniqueItems": lambda v: isinstance(v, bool),
}


def _plainly_valid(schema: Any, depth: int = 0) -> bool:
    """True only when ``schema`` is certainly valid JSON Schema (the common shapes); False means
    "ask jsonschema", which is slower to import (this keeps ``voicefn validate`` quick)."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or depth > 8:
        return False
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            if not isinstance(value, dict) or not all(
                _plainly_valid(v, depth + 1) for v in value.values()
            ):
                return False
        elif key in ("items", "additionalProperties"):
            if not _plainly_valid(value, depth + 1):
                return False
        elif key not in _PLAIN or not _PLAIN[key](value):
            return False
    return True


@functools.cache
def _meta_validator() -> Any:
    from jsonschema import Draft202012Validator  # only validation pays for it

    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


def check_parameters(params: Any, out: Collector, mapped: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(params, dict):
        out.add(
            ("parameters",),
            "parameters must be a JSON Schema object",
            'use {"type": "object", "properties": {...}}',
            params,
        )
        return {}
    if params.get("type") != "object":
        out.add(
            ("parameters", "type"),
            "parameters must have type 'object'",
            'set "type": "object"',
            params.get("type"),
        )
    props = params.get("properties", {})
    if not isinstance(props, dict):
        props = {}
    for pname, prop in props.items():
        if not isinstance(prop, dict):
            continue
        ptype = prop.get("type")
        types = ptype if isinstance(ptype, list) else [ptype]
        for t in types:
            if t is None and "enum" not in prop and "anyOf" not in prop:
                out.add(
                    ("parameters", "properties", pname, "type"),
                    "parameter has no type",
                    f"add a type: one of {', '.join(PARAMETER_TYPES)}",
                )
            elif isinstance(t, str) and t not in (*PARAMETER_TYPES, "null"):
                hint = did_you_mean(t, PARAMETER_TYPES) or {
                    "float": "number",
                    "int": "integer",
                    "str": "string",
                    "bool": "boolean",
                    "dict": "object",
                    "list": "array",
                }.get(t)
                out.add(
                    ("parameters", "properties", pname, "type"),
                    f"unsupported parameter type {t!r}",
                    f"use {hint!r}" if hint else f"use one of {', '.join(PARAMETER_TYPES)}",
                    t,
                )
        if not prop.get("description") and pname not in (mapped or ()):  # no LLM reads those
            out.add(
                ("parameters", "properties", pname, "description"),
                "parameter has no description",
                "describe what the LLM should collect, e.g. 'The order ID, usually starts with ORD-'",
                severity="warning",
            )
    reported = {p.path for p in out.problems}
    for err in () if _plainly_valid(params) else _meta_validator().iter_errors(params):
        path = ("parameters", *err.absolute_path)
        if json_path(out.locate(path)) not in reported:
            out.add(path, f"not valid JSON Schema: {err.message}", "correct the schema keyword")
    required = params.get("required", [])
    if isinstance(required, list):
        for i, req in enumerate(required):
            if isinstance(req, str) and req not in props:
                hint = did_you_mean(req, props)
                fix = (
                    f"did you mean {hint!r}? Parameter names must match exactly"
                    if hint
                    else f"declare {req!r} under properties or remove it from required"
                )
                out.add(
                    ("parameters", "required", i),
                    f"required names {req!r}, which is not a declared property",
                    fix,
                    req,
                )
    return props
