"""What an LLM sees: OpenAI (Chat Completions and Responses), Anthropic and Gemini tool schemas.

Only name, description and the parameters the LLM must fill. Never a URL, token, header or
template; parameters the call context already provides are removed, so the LLM neither asks the
caller for them nor overrides them.
"""

from __future__ import annotations

import copy
from typing import Any

from ..context import CallContext
from ..spec import Function

NAMES = ("openai", "openai-responses", "anthropic", "gemini")


def context_filled(function: Function, context: CallContext | None) -> list[str]:
    """Declared parameters whose value this call's context provides."""
    if context is None:
        return []
    return [name for name in function.properties if context.lookup(name)[0]]


def llm_parameters(function: Function, context: CallContext | None = None) -> dict[str, Any]:
    """The function's JSON Schema with context-filled parameters removed."""
    hidden = set(context_filled(function, context))
    schema = copy.deepcopy(function.parameters)
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {})
    for name in hidden:
        props.pop(name, None)
    if "required" in schema:
        schema["required"] = [r for r in schema["required"] if r not in hidden]
        if not schema["required"]:
            del schema["required"]
    return schema


_GEMINI_KEYS = {
    "type", "format", "description", "nullable", "enum", "items", "properties", "required",
    "minItems", "maxItems", "minimum", "maximum", "anyOf", "propertyOrdering", "title",
    "minLength", "maxLength", "pattern", "minProperties", "maxProperties", "default", "example",
}  # fmt: skip


def gemini_schema(schema: Any) -> Any:
    """JSON Schema -> Gemini's OpenAPI-subset Schema (upper-case types, unsupported keys dropped,
    ``["string", "null"]`` -> ``nullable``)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _GEMINI_KEYS:
            continue
        if key == "type":
            types = value if isinstance(value, list) else [value]
            real = [t for t in types if t != "null"]
            if len(real) < len(types):
                out["nullable"] = True
            if real:
                out["type"] = str(real[0]).upper()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: gemini_schema(v) for k, v in value.items()}
        elif key == "items":
            out[key] = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [gemini_schema(v) for v in value]
        else:
            out[key] = value
    return out


def dump(function: Function, dialect: str, context: CallContext | None = None) -> dict[str, Any]:
    params = llm_parameters(function, context)
    name, description = function.name, function.description
    if dialect == "openai":
        return {
            "type": "function",
            "function": {"name": name, "description": description, "parameters": params},
        }
    if dialect == "openai-responses":
        return {"type": "function", "name": name, "description": description, "parameters": params}
    if dialect == "anthropic":
        return {"name": name, "description": description, "input_schema": params}
    if dialect == "gemini":
        return {"name": name, "description": description, "parameters": gemini_schema(params)}
    raise ValueError(f"unknown LLM dialect {dialect!r}; use one of {', '.join(NAMES)}")
