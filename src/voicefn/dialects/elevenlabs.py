"""ElevenLabs' webhook tool (``"type": "webhook"`` with ``api_schema``), from the ElevenLabs
Agents Platform API reference (``WebhookToolConfig``, ``WebhookToolApiSchemaConfig``) and the
tool JSON its dashboard exports (the docs' integration guides publish that form: lists of
``{id, type, description, value_type, ...}`` instead of maps).

ElevenLabs calls the API itself, so a webhook tool is an ordinary voicefn HTTP function:

- ``api_schema.url`` with ``{name}`` path placeholders, ``method`` (default GET), and
  ``content_type`` (a form body sets ``Content-Type``);
- ``path_params_schema``, ``query_params_schema.properties`` and
  ``request_body_schema.properties`` are the parameters; a property the LLM fills becomes
  ``%(name)s`` in the URL or the template, one with ``dynamic_variable`` becomes ``{variable}``
  (``system__caller_id`` is ``{from_number}``, ``system__called_number`` ``{to_number}``,
  ``system__call_sid`` ``{call_sid}``, ``system__agent_id`` ``{agent_id}``), one with
  ``constant_value`` is sent as written, ``is_omitted`` is left out;
- ``request_headers``: a value as written (``{{variable}}`` becomes ``{variable}``), a dynamic
  variable, or a secret from the agent's secret store, which becomes the context variable
  ``secret_<id>`` the call must set (voicefn never sees ElevenLabs' secrets);
- ``response_timeout_secs`` (default 20) is ``timeout_ms``.

Kept in ``platform_fields["elevenlabs"]`` for converting back, not acted on:
``force_pre_tool_speech`` (ElevenLabs has the agent say something; voicefn speaks the filler),
``disable_interruptions``, ``assignments``, ``dynamic_variables``, ``tool_call_sound``,
``execution_mode``, ``tool_error_handling_mode``, ``auth_connection``, ``response_filter``...
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..spec import Function
from ..validation import Locate, Path, Problem
from ._common import drop_none, prefix_locator, repeat_loss
from .vapi import from_liquid, split_keys, to_liquid

NAME = "elevenlabs"
PLATFORM = "elevenlabs"
KEYS = ("type", "name", "description", "response_timeout_secs", "api_schema")
KEPT_KEYS = (
    "disable_interruptions",
    "force_pre_tool_speech",
    "assignments",
    "dynamic_variables",
    "tool_call_sound",
    "tool_call_sound_behavior",
    "tool_error_handling_mode",
    "execution_mode",
    "id",
)
SCHEMA_KEYS = (
    "url",
    "method",
    "path_params_schema",
    "query_params_schema",
    "request_body_schema",
    "request_headers",
    "content_type",
)
SCHEMA_KEPT = ("auth_connection", "response_filter", "response_body_schema", "auth_resolved_params")
DEFAULT_TIMEOUT_S = 20
FORM = "application/x-www-form-urlencoded"
QUERY_METHODS = ("GET", "DELETE")
#: ElevenLabs' system dynamic variables that a voicefn call context provides.
SYSTEM_VARIABLES = {
    "system__caller_id": "from_number",
    "system__called_number": "to_number",
    "system__call_sid": "call_sid",
    "system__agent_id": "agent_id",
    "system__conversation_id": "execution_id",
}
_TO_SYSTEM = {v: k for k, v in SYSTEM_VARIABLES.items()}
_CONVERSIONS = {"integer": "i", "number": "f"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VAR_BAD = re.compile(r"[^A-Za-z0-9_]+")
#: Keys of a property that say where its value comes from, not what it is.
_SOURCE_KEYS = (
    "dynamic_variable",
    "constant_value",
    "is_system_provided",
    "is_omitted",
    "value_type",
    "id",
    "allowed_values",
    "allowed_values_dynamic_variable",
)


def detect(data: dict[str, Any]) -> bool:
    from . import SIGNS  # the registry's sign (detection imports no dialect module)

    return SIGNS["elevenlabs"](data)


def _variable(name: str) -> str:
    return SYSTEM_VARIABLES.get(name, _VAR_BAD.sub("_", name) or "variable")


def _specifier(prop: str, schema: Any) -> str:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return f"%({prop}){_CONVERSIONS.get(str(kind), 's')}"


# ------------------------------------------------------------------- dashboard (list) form


def _ui_property(item: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if k not in ("id", "value_type", "required")}
    kind = item.get("value_type")
    if kind != "dynamic_variable" or not out.get("dynamic_variable"):
        out.pop("dynamic_variable", None)
    if kind != "constant_value" or out.get("constant_value") in ("", None):
        out.pop("constant_value", None)
    if isinstance(item.get("properties"), list):
        out.update(_ui_object(item))
    if isinstance(item.get("items"), dict):
        out["items"] = _ui_property(item["items"])
    return out


def _ui_object(item: dict[str, Any]) -> dict[str, Any]:
    props = item.get("properties") or []
    return {
        "type": "object",
        "description": item.get("description", ""),
        "properties": {
            p["id"]: _ui_property(p) for p in props if isinstance(p, dict) and "id" in p
        },
        "required": [
            p["id"] for p in props if isinstance(p, dict) and p.get("required") and "id" in p
        ],
    }


def normalize(api: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's list form of ``api_schema`` as the API's map form (the map form as is)."""
    out = dict(api)
    path = api.get("path_params_schema")
    if isinstance(path, list):
        out["path_params_schema"] = {
            p["id"]: _ui_property(p) for p in path if isinstance(p, dict) and "id" in p
        }
    query = api.get("query_params_schema")
    if isinstance(query, list):
        out["query_params_schema"] = (
            {
                "properties": {
                    p["id"]: _ui_property(p) for p in query if isinstance(p, dict) and "id" in p
                },
                "required": [p["id"] for p in query if isinstance(p, dict) and p.get("required")],
            }
            if query
            else None
        )
    if isinstance(query, dict) and query and "properties" not in query:
        # a bare map of properties (as in the API reference's own example)
        out["query_params_schema"] = {"properties": query}
    body = api.get("request_body_schema")
    if isinstance(body, dict) and isinstance(body.get("properties"), list):
        out["request_body_schema"] = _ui_object(body)
    elif isinstance(body, dict) and body and "properties" not in body and "type" not in body:
        out["request_body_schema"] = {"type": "object", "properties": body}
    headers = api.get("request_headers")
    if isinstance(headers, list):
        mapped: dict[str, Any] = {}
        for h in headers:
            if not isinstance(h, dict) or "name" not in h:
                continue
            if h.get("type") == "secret":
                mapped[h["name"]] = {"secret_id": h.get("secret_id", "")}
            elif h.get("type") == "dynamic_variable":
                mapped[h["name"]] = {"variable_name": h.get("dynamic_variable") or h.get("value")}
            else:
                mapped[h["name"]] = h.get("value", "")
        out["request_headers"] = mapped
    return out


# ------------------------------------------------------------------------------ loading


def _schema(prop: Any) -> dict[str, Any]:
    """A property as JSON Schema: where its value comes from is not the LLM's business."""
    if not isinstance(prop, dict):
        return {"type": "string"}
    out = {k: v for k, v in prop.items() if k not in _SOURCE_KEYS}
    if not isinstance(out.get("required"), list):
        out.pop("required", None)  # a property's own "required: true" (the list form says where)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            k: _schema(v)
            for k, v in out["properties"].items()
            if not (isinstance(v, dict) and (v.get("is_omitted") or _fixed(v)))
        }
        if not out.get("required"):
            out.pop("required", None)
    if isinstance(out.get("items"), dict):
        out["items"] = _schema(out["items"])
    if out.get("description") == "":
        out.pop("description")
    return out


def _fixed(prop: dict[str, Any]) -> bool:
    return bool(prop.get("dynamic_variable")) or prop.get("constant_value") not in (None, "")


def _source(prop: Any) -> tuple[str, Any]:
    """``("llm" | "variable" | "constant" | "omit", value)``."""
    if not isinstance(prop, dict):
        return "llm", None
    if prop.get("is_omitted"):
        return "omit", None
    if prop.get("dynamic_variable"):
        return "variable", _variable(str(prop["dynamic_variable"]))
    if prop.get("constant_value") not in (None, ""):
        return "constant", prop["constant_value"]
    return "llm", None


def _nested_sources(prop: Any, where: str, problems: list[Problem]) -> None:
    if not isinstance(prop, dict):
        return
    for name, sub in (prop.get("properties") or {}).items():
        if isinstance(sub, dict) and _fixed(sub):
            problems.append(
                Problem(
                    where,
                    f"the nested field {name!r} takes a dynamic variable or constant, which voicefn "
                    "sets only on top-level fields: it is left out of what the LLM fills and not sent",
                    "move it to the top level of the body",
                    severity="warning",
                )
            )
        _nested_sources(sub, where, problems)


def to_canonical(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    kept: dict[str, Any] = {k: data[k] for k in KEPT_KEYS if k in data}
    extra, problems = split_keys(data, KEYS, KEPT_KEYS, ())
    kept.update(extra)
    raw = data.get("api_schema")
    if not isinstance(raw, dict):
        problems.append(
            Problem(
                "$.api_schema",
                "required field is missing: a webhook tool says what to call in api_schema",
                'add "api_schema": {"url": "https://...", "method": "POST"}',
            )
        )
        raw = {}
    api = normalize(raw)
    schema_extra, more = split_keys(api, SCHEMA_KEYS, SCHEMA_KEPT, ("api_schema",))
    problems += more
    schema_kept = {k: api[k] for k in SCHEMA_KEPT if k in api} | schema_extra
    if schema_kept:
        kept["api_schema"] = schema_kept
    if data.get("force_pre_tool_speech"):
        problems.append(
            Problem(
                "$.force_pre_tool_speech",
                "ElevenLabs has the agent say something before the tool runs; voicefn speaks a "
                "fixed filler, and this tool has none. Kept for converting back",
                "add a filler line when you manage the function in voicefn",
                severity="warning",
            )
        )
    method = str(api.get("method") or "GET").upper()
    properties: dict[str, Any] = {}
    required: list[str] = []
    template: dict[str, Any] = {}
    url = api.get("url")
    for name, prop in (api.get("path_params_schema") or {}).items():
        source, value = _source(prop)
        if source == "llm":
            replacement = _specifier(name, prop)
            properties[name] = _schema(prop)
            required.append(name)
        elif source == "variable":
            replacement = "{" + str(value) + "}"
        else:
            replacement = str(value or "")
        if isinstance(url, str):
            url = url.replace("{" + name + "}", replacement)
    query = api.get("query_params_schema") or {}
    body = api.get("request_body_schema") or {}
    sections: list[tuple[str, dict[str, Any], list[str]]] = []
    if isinstance(query, dict):
        sections.append(("query", query.get("properties") or {}, list(query.get("required") or [])))
    if isinstance(body, dict) and body.get("properties"):
        if method in QUERY_METHODS:
            problems.append(
                Problem(
                    "$.api_schema.request_body_schema",
                    f"a {method} sends no body: request_body_schema is left out",
                    "use POST, PUT or PATCH for a body",
                    severity="warning",
                )
            )
        else:
            sections.append(("body", body["properties"], list(body.get("required") or [])))
    fixed_query: list[str] = []
    for where, props, req in sections:
        for name, prop in props.items():
            source, value = _source(prop)
            if source == "omit":
                continue
            if source == "llm":
                if name in properties:
                    problems.append(
                        Problem(
                            f"$.api_schema.{where}",
                            f"{name!r} is declared twice (path, query or body)",
                            "rename one of them: the LLM fills each parameter once",
                            name,
                        )
                    )
                    continue
                properties[name] = _schema(prop)
                _nested_sources(
                    prop, f"$.api_schema.request_body_schema.properties.{name}", problems
                )
                if name in req:
                    required.append(name)
                entry: Any = _specifier(name, prop)
            elif source == "variable":
                entry = "{" + str(value) + "}"
            else:
                entry = value
            if where == "query" and method not in QUERY_METHODS:
                if source == "llm" and name not in req:
                    problems.append(
                        Problem(
                            f"$.api_schema.query_params_schema.properties.{name}",
                            f"an optional query parameter of a {method} cannot be sent by voicefn "
                            "(only required ones stay in the URL): it is left out",
                            "make it required, or send it in the body",
                            severity="warning",
                        )
                    )
                    properties.pop(name, None)
                    continue
                fixed_query.append(f"{name}={entry}")
            else:
                template[name] = entry
    if isinstance(url, str) and fixed_query:
        url += ("&" if "?" in url else "?") + "&".join(fixed_query)
    headers: dict[str, str] = {}
    for name, value in (api.get("request_headers") or {}).items():
        if isinstance(value, dict) and "secret_id" in value:
            var = "secret_" + (
                _VAR_BAD.sub("_", str(value["secret_id"])).strip("_").lower() or "value"
            )
            headers[name] = "{" + var + "}"
            problems.append(
                Problem(
                    f"$.api_schema.request_headers.{name}",
                    f"the header comes from an ElevenLabs secret, which voicefn cannot read: it is "
                    f"the context variable {{{var}}}",
                    f"set it per call (--var {var}=...) or in the agent's variables",
                    severity="warning",
                )
            )
            kept.setdefault("secrets", {})[name] = value
        elif isinstance(value, dict) and value.get("variable_name"):
            headers[name] = "{" + _variable(str(value["variable_name"])) + "}"
        else:
            headers[name] = from_liquid(str(value))
    if api.get("content_type") == FORM and method not in QUERY_METHODS:
        headers.setdefault("Content-Type", FORM)
    timeout = data.get("response_timeout_secs", DEFAULT_TIMEOUT_S)
    timeout_ms = timeout * 1000 if isinstance(timeout, int | float) else timeout
    doc = drop_none(
        {
            "name": data.get("name"),
            "description": data.get("description", ""),
            "phase": "in_call",
            "parameters": {
                "type": "object",
                "properties": properties,
                **({"required": required} if required else {}),
            },
            "action": drop_none(
                {
                    "type": "http",
                    "method": method,
                    "url": url,
                    "param": template,
                    "headers": headers,
                    "timeout_ms": timeout_ms,
                }
            ),
            "platform_fields": {PLATFORM: kept} if kept else None,
        }
    )
    return doc, problems


def locate_for(data: Any) -> Locate:
    """Canonical paths in this document's own terms (a parameter: where it was declared)."""
    table: dict[Path, Path] = {
        ("action", "url"): ("api_schema", "url"),
        ("action", "method"): ("api_schema", "method"),
        ("action", "headers"): ("api_schema", "request_headers"),
        ("action", "timeout_ms"): ("response_timeout_secs",),
        ("action",): ("api_schema",),
        ("phase",): (),
        ("filler",): (),
    }
    api = data.get("api_schema") if isinstance(data, dict) else None
    if isinstance(api, dict):
        api = normalize(api)
        for name in api.get("path_params_schema") or {}:
            table[("parameters", "properties", name)] = ("api_schema", "path_params_schema", name)
        for section in ("query_params_schema", "request_body_schema"):
            node = api.get(section)
            if isinstance(node, dict):
                for name in node.get("properties") or {}:
                    table[("parameters", "properties", name)] = (
                        "api_schema",
                        section,
                        "properties",
                        name,
                    )
    located: Locate = prefix_locator(table)
    return located


locate: Locate = locate_for({})


# ------------------------------------------------------------------------------ dumping


def _literal(schema: Any, lost: list[str], where: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {"type": "string", "description": ""}
    out = {k: v for k, v in schema.items() if k in ("type", "description", "enum")}
    kind = out.get("type")
    if isinstance(kind, list):
        real = [t for t in kind if t != "null"]
        out["type"] = real[0] if real else "string"
    if out.get("type") not in ("boolean", "string", "integer", "number"):
        lost.append(f"{where}: ElevenLabs takes only text, number and boolean values there")
        out["type"] = "string"
    out.setdefault("description", "")
    return out


def _property(schema: Any) -> dict[str, Any]:
    """A JSON Schema as one of ElevenLabs' body properties (literal, array or object)."""
    if not isinstance(schema, dict):
        return {"type": "string", "description": ""}
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return drop_none(
            {
                "type": "object",
                "description": schema.get("description", ""),
                "properties": {k: _property(v) for k, v in props.items()},
                "required": schema.get("required") or None,
            }
        )
    if kind == "array":
        return {
            "type": "array",
            "description": schema.get("description", ""),
            "items": _property(schema.get("items") or {"type": "string"}),
        }
    return _literal(schema, [], "")


def _source_of(value: Any, props: dict[str, Any]) -> tuple[str, Any]:
    if isinstance(value, str):
        m = re.fullmatch(r"%\(([^()%]*)\)[sif]", value)
        if m and m.group(1) in props:
            return "llm", m.group(1)
        m = _PLACEHOLDER.fullmatch(value)
        if m:
            return "variable", _TO_SYSTEM.get(m.group(1), m.group(1))
        if "%(" in value or "{" in value:
            return "mixed", value
    elif isinstance(value, dict | list):
        return "mixed", value
    return "constant", value


def from_function(f: Function) -> tuple[dict[str, Any], list[str]]:
    a = f.http
    kept = dict(f.platform_fields.get(PLATFORM, {}))
    lost: list[str] = repeat_loss(f)
    if f.phase != "in_call":
        lost.append(f"phase {f.phase!r} (ElevenLabs webhook tools are called during the call)")
    if a.pre_call_webhook_param is not None or a.pre_call_webhook_url is not None:
        lost.append("the pre-call webhook")
    if f.filler is not None:
        lost.append(
            "the filler line (ElevenLabs has the agent say something itself: "
            "force_pre_tool_speech is set)"
        )
    props = f.properties
    required = set(f.required)
    url, _, raw_query = a.url.partition("?")
    path_schema: dict[str, Any] = {}

    def path_param(m: re.Match[str]) -> str:
        text = m.group(0)
        if text.startswith("%("):
            name = m.group(1)
            path_schema[name] = _literal(props.get(name), lost, f"path parameter {name}")
            return "{" + name + "}"
        var = _TO_SYSTEM.get(m.group(2), m.group(2))
        path_schema[var] = {"type": "string", "dynamic_variable": var, "description": ""}
        return "{" + var + "}"

    url = re.sub(r"%\(([^()%]*)\)[sif]|\{([A-Za-z_][A-Za-z0-9_]*)\}", path_param, url)
    entries: dict[str, Any] = {}
    literal: list[str] = []
    for pair in raw_query.split("&") if raw_query else []:
        key, _, value = pair.partition("=")
        if "%(" in value or "{" in value:  # filled per call: a query parameter
            entries[key] = value
        else:  # fixed: stays in the URL, as ElevenLabs allows
            literal.append(pair)
    if literal:
        url += "?" + "&".join(literal)
    template = a.param if a.param is not None else {p: _specifier(p, s) for p, s in props.items()}
    body: dict[str, Any] | None = None
    if isinstance(template, dict):
        if a.method in QUERY_METHODS:
            entries.update(template)
        else:
            body = template
    else:
        lost.append("the param template (ElevenLabs sends an object of fields)")

    def field(name: str, value: Any, literal: bool) -> tuple[dict[str, Any] | None, bool]:
        source, detail = _source_of(value, props)
        if source == "llm":
            schema = props.get(detail)
            prop = (
                _literal(schema, lost, f"query parameter {name}") if literal else _property(schema)
            )
            if detail != name:
                prop["description"] = prop.get("description", "")
            return prop, detail in required
        if source == "variable":
            return {"type": "string", "dynamic_variable": detail, "description": ""}, False
        if source == "constant":
            kind = (
                "boolean"
                if isinstance(value, bool)
                else "integer"
                if isinstance(value, int)
                else "number"
                if isinstance(value, float)
                else "string"
            )
            return {"type": kind, "constant_value": value, "description": ""}, False
        lost.append(f"the field {name!r} of the param template (it mixes text and values)")
        return None, False

    query_props: dict[str, Any] = {}
    query_required: list[str] = []
    for name, value in entries.items():
        prop, req = field(name, value, True)
        if prop is not None:
            query_props[name] = prop
            if req:
                query_required.append(name)
    body_schema: dict[str, Any] | None = None
    if body is not None:
        body_props: dict[str, Any] = {}
        body_required: list[str] = []
        for name, value in body.items():
            prop, req = field(name, value, False)
            if prop is not None:
                body_props[name] = prop
                if req:
                    body_required.append(name)
        body_schema = drop_none(
            {
                "type": "object",
                "description": "",
                "properties": body_props,
                "required": body_required or None,
            }
        )
    headers: dict[str, Any] = {}
    content_type = None
    for name, value in a.headers.items():
        if name.lower() == "content-type":
            base = value.split(";")[0].strip().lower()
            if base == FORM:
                content_type = FORM
                continue  # ElevenLabs' own setting says it
            if base != "application/json":
                lost.append(f"Content-Type {value} (ElevenLabs sends JSON or a form)")
                continue
        secret = (kept.get("secrets") or {}).get(name)
        m = _PLACEHOLDER.fullmatch(value)
        if secret is not None and m is not None:
            headers[name] = secret
        elif m is not None:
            headers[name] = {"variable_name": _TO_SYSTEM.get(m.group(1), m.group(1))}
        else:
            headers[name] = to_liquid(value)
    if a.token is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        headers["Authorization"] = a.token
    seconds = max(5, min(120, math.ceil(a.timeout_ms / 1000)))
    if seconds * 1000 != a.timeout_ms:
        lost.append(f"timeout_ms={a.timeout_ms} (ElevenLabs takes whole seconds from 5 to 120)")
    api = drop_none(
        {
            "url": url,
            "method": a.method,
            "path_params_schema": path_schema or None,
            "query_params_schema": {
                "properties": query_props,
                **({"required": query_required} if query_required else {}),
            }
            if query_props
            else None,
            "request_body_schema": body_schema,
            "request_headers": headers or None,
            "content_type": content_type,
            **(kept.get("api_schema") or {}),
        }
    )
    doc: dict[str, Any] = {
        "type": "webhook",
        "name": f.name,
        "description": f.description,
        "response_timeout_secs": seconds,
        "api_schema": api,
    }
    if f.filler is not None:
        doc["force_pre_tool_speech"] = True
    for key in KEPT_KEYS:
        if key in kept:
            doc[key] = kept[key]
    for key, value in kept.items():
        if key not in (*KEPT_KEYS, "api_schema", "secrets"):
            doc[key] = value
    return doc, lost
