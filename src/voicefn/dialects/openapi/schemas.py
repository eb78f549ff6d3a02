"""OpenAPI schemas as the JSON Schema subset LLM providers read, and what a schema holds."""

from __future__ import annotations

import copy
from typing import Any, Final

from .text import plain_text

_SCHEMA_KEYS: Final = frozenset(
    {
        "type", "description", "enum", "const", "default", "items", "properties", "required",
        "additionalProperties", "format", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
        "uniqueItems", "anyOf", "title", "examples", "multipleOf",
    }
)  # fmt: skip


def _merge_all_of(parts: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    required: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if "allOf" in part:
            part = {
                **{k: v for k, v in part.items() if k != "allOf"},
                **_merge_all_of(part["allOf"]),
            }
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                out.setdefault("properties", {}).update(value)
            elif key == "required" and isinstance(value, list):
                required += [r for r in value if isinstance(r, str) and r not in required]
            else:
                out.setdefault(key, value)
    if required:
        out["required"] = required
    return out


def clean_schema(schema: Any, *, nullable_keyword: bool = True) -> dict[str, Any]:
    """An inlined OpenAPI schema as the JSON Schema subset LLM providers read: OpenAPI-only
    keywords dropped, ``allOf`` merged, ``oneOf`` as ``anyOf``, ``nullable`` as a null type,
    ``example`` as ``examples``, ``readOnly`` properties left out, a missing type guessed."""
    if not isinstance(schema, dict):
        return {"type": "string"}
    if "allOf" in schema:
        merged = _merge_all_of(schema["allOf"])
        schema = {**merged, **{k: v for k, v in schema.items() if k != "allOf"}}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "oneOf" and "anyOf" not in schema:
            key = "anyOf"
        if key == "example" and "examples" not in schema:
            out["examples"] = [value]
            continue
        if key not in _SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {
                name: clean_schema(prop, nullable_keyword=nullable_keyword)
                for name, prop in value.items()
                if not (isinstance(prop, dict) and prop.get("readOnly") is True)
            }
        elif key == "items":
            out[key] = clean_schema(value, nullable_keyword=nullable_keyword)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [clean_schema(v, nullable_keyword=nullable_keyword) for v in value]
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = clean_schema(value, nullable_keyword=nullable_keyword)
        elif key == "format" and value in ("binary", "byte"):
            continue
        elif key == "description":
            out[key] = plain_text(value)
        else:
            out[key] = copy.deepcopy(value)
    if "required" in out and isinstance(out.get("properties"), dict):
        out["required"] = [r for r in out["required"] if r in out["properties"]]
        if not out["required"]:
            del out["required"]
    if "type" not in out and "anyOf" not in out and "enum" not in out and "const" not in out:
        if "properties" in out:
            out["type"] = "object"
        elif "items" in out:
            out["type"] = "array"
        else:
            out["type"] = "string"
    if nullable_keyword and schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("type") == "file":
        out["type"] = "string"
    return out


def is_file(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "file" or schema.get("format") in ("binary", "byte"):
        return True
    items = schema.get("items")
    return schema.get("type") == "array" and is_file(items)


def is_nested(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "object" or "properties" in schema:
        return True
    if schema.get("type") == "array":
        return is_nested(schema.get("items"))
    return any(is_nested(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))
