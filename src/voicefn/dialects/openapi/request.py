"""An operation's parameters and request body read into the function's parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ...context import SYSTEM_VARIABLES
from .document import Operation, Skip
from .refs import deref, inline_refs
from .schemas import clean_schema
from .text import plain_text

_PROP_BAD: Final = re.compile(r"[^a-zA-Z0-9_.-]")
_SWAGGER2_PARAM_SCHEMA: Final = (
    "type", "format", "items", "enum", "default", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "uniqueItems", "multipleOf",
)  # fmt: skip
FORM: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"


@dataclass
class Builder:
    op: Operation
    warnings: list[str] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, schema: dict[str, Any], required: bool, where: str) -> str:
        prop = name
        if prop in SYSTEM_VARIABLES:
            prop = f"target_{prop}"
            self.warnings.append(
                f"the {where} parameter {name!r} is named like a system variable: it is "
                f"{prop!r} (the engine would fill {name!r} with this call's own value)"
            )
        if _PROP_BAD.search(prop):  # LLM providers take [a-zA-Z0-9_.-] property names only
            prop = _PROP_BAD.sub("_", prop.replace("<", "_lt").replace(">", "_gt")).strip("_")
            prop = (prop or "value")[:64]
        if prop in self.properties:
            prop = f"{where}_{prop}"
            self.warnings.append(
                f"the {where} field {name!r} is also a parameter elsewhere: it is {prop!r}"
            )
        self.properties[prop] = schema
        if required and prop not in self.required:
            self.required.append(prop)
        return prop


def specifier(prop: str, schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    conv = {"integer": "i", "number": "f"}.get(kind, "s") if isinstance(kind, str) else "s"
    return f"%({prop}){conv}"


def operation_parameters(
    item: Mapping[str, Any], op: Mapping[str, Any], doc: Any
) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*(item.get("parameters") or []), *(op.get("parameters") or [])]:
        param = deref(raw, doc)
        if isinstance(param, dict) and isinstance(param.get("name"), str):
            merged[(param["name"], str(param.get("in")))] = param
    return list(merged.values())


def param_schema(param: Mapping[str, Any], doc: Any, version: str) -> dict[str, Any]:
    if version == "2.0" and param.get("in") != "body":
        raw: Any = {k: param[k] for k in _SWAGGER2_PARAM_SCHEMA if k in param}
    else:
        raw = param.get("schema")
        content = param.get("content")
        if raw is None and isinstance(content, dict) and content:  # OpenAPI 3 "content" form
            media = next(iter(content.values()))
            raw = media.get("schema") if isinstance(media, dict) else None
    schema = clean_schema(
        inline_refs(raw or {"type": "string"}, doc), nullable_keyword=version != "3.1"
    )
    description = plain_text(param.get("description"))
    if description and "description" not in schema:
        schema = {**schema, "description": description}
    return schema


def request_body(
    op: Mapping[str, Any], params: list[dict[str, Any]], doc: Any, version: str, b: Builder
) -> tuple[dict[str, Any] | None, str | None, bool]:
    """``(schema, content type, required)`` of the request body, or None."""
    if version == "2.0":
        body = next((p for p in params if p.get("in") == "body"), None)
        form = [p for p in params if p.get("in") == "formData"]
        consumes = op.get("consumes", doc.get("consumes")) or ["application/json"]
        if body is not None:
            schema = clean_schema(
                inline_refs(body.get("schema") or {}, doc), nullable_keyword=False
            )
            return schema, "application/json", bool(body.get("required"))
        if form:
            props: dict[str, Any] = {}
            required: list[str] = []
            for p in form:
                props[p["name"]] = param_schema(p, doc, version)
                if p.get("type") == "file":
                    props[p["name"]] = {"type": "file"}
                if p.get("required"):
                    required.append(p["name"])
            kind = (
                MULTIPART
                if MULTIPART in consumes or any(p.get("type") == "file" for p in form)
                else FORM
            )
            return {"type": "object", "properties": props, "required": required}, kind, True
        return None, None, False
    request = deref(op.get("requestBody"), doc)
    if not isinstance(request, dict):
        return None, None, False
    content = request.get("content") or {}
    if not isinstance(content, dict) or not content:
        return None, None, False
    chosen = next((t for t in content if t == "application/json" or t.endswith("+json")), None)
    chosen = chosen or next((t for t in (FORM, MULTIPART) if t in content), None)
    if chosen is None:
        chosen = next(iter(content))
        if chosen.split(";")[0].strip() not in ("*/*", "application/*", "text/plain"):
            raise Skip(f"its request body is {', '.join(content)}, which a function cannot send")
        b.warnings.append(f"the request body is {chosen}; the function sends JSON")
        chosen = "application/json"
    media = content.get(chosen) or {}
    raw = media.get("schema") if isinstance(media, dict) else None
    schema = clean_schema(
        inline_refs(raw or {"type": "object"}, doc), nullable_keyword=version != "3.1"
    )
    kind = chosen if chosen in (FORM, MULTIPART) else "application/json"
    return schema, kind, bool(request.get("required"))
