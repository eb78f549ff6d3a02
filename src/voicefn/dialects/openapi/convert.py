"""One operation -> one canonical function document: URL, parameters, body template, headers,
security, name and description, with a warning for what it cannot carry."""

from __future__ import annotations

import re
from typing import Any, Final

from ...validation import FROM_CURL_TODO
from .document import OTHER_METHODS, Operation, Skip, server_base_url
from .refs import deref
from .request import (
    FORM,
    MULTIPART,
    Builder,
    operation_parameters,
    param_schema,
    request_body,
    specifier,
)
from .schemas import is_file, is_nested
from .security import security_of
from .text import first_paragraph, plain_text

_NAME_BAD: Final = re.compile(r"[^a-zA-Z0-9_-]+")
_PATH_PARAM: Final = re.compile(r"\{([^{}]+)\}")


def _function_name(op: Operation) -> str:
    if op.operation_id:
        name = _NAME_BAD.sub("_", op.operation_id).strip("_")
        if name:
            return name[:64]
    words = [w for w in re.split(r"[/{}.\-]+", op.path) if w]
    return _NAME_BAD.sub("_", "_".join([op.method, *words])).strip("_")[:64] or op.method


def convert_operation(
    op: Operation, doc: dict[str, Any], version: str, base: str, base_given: bool = False
) -> tuple[dict[str, Any], list[str], list[str]]:
    item = deref(doc["paths"][op.path], doc)
    raw = item[op.method]
    b = Builder(op)
    if op.method in OTHER_METHODS:
        raise Skip(
            f"the method {op.method.upper()} is not one a function can use (GET, POST, PUT, PATCH, DELETE)"
        )
    if raw.get("callbacks"):
        b.warnings.append("its callbacks (requests the API sends back later) are not mapped")
    if raw.get("deprecated"):
        b.warnings.append("the operation is deprecated")
    params = operation_parameters(item, raw, doc)
    method = op.method.upper()
    query_method = method in ("GET", "DELETE")
    url_path = op.path
    for p in params:
        if p.get("in") != "path":
            continue
        prop = b.add(p["name"], param_schema(p, doc, version), True, "path")
        url_path = url_path.replace("{" + p["name"] + "}", specifier(prop, b.properties[prop]))
    for leftover in _PATH_PARAM.findall(url_path):
        prop = b.add(leftover, {"type": "string"}, True, "path")
        url_path = url_path.replace("{" + leftover + "}", f"%({prop})s")
        b.warnings.append(f"the path parameter {leftover!r} is not declared: it is a string")
    template: dict[str, Any] = {}
    fixed_query: list[str] = []
    for p in params:
        where, name = p.get("in"), p["name"]
        if where == "query":
            schema = param_schema(p, doc, version)
            if is_nested(schema) and query_method:
                b.warnings.append(
                    f"the query parameter {name!r} is an object: it is sent as JSON text"
                )
            if query_method:
                prop = b.add(name, schema, bool(p.get("required")), "query")
                template[name] = specifier(prop, schema)
            elif p.get("required"):
                prop = b.add(name, schema, True, "query")
                fixed_query.append(f"{name}={specifier(prop, schema)}")
            else:
                b.warnings.append(
                    f"the optional query parameter {name!r} of a {method} is left out (a "
                    f"{method} sends its param as the body; only required query parameters can "
                    "stay in the URL)"
                )
        elif where in ("header", "cookie"):
            b.warnings.append(
                f"the {where} parameter {name!r} is left out: nothing the LLM says may set a "
                "header; add it to the function's headers if the API needs it"
            )
    headers: dict[str, str] = {}
    body, kind, body_required = request_body(raw, params, doc, version, b)
    if body is not None and query_method:
        if body.get("properties") or body.get("type") not in ("object", None):
            b.warnings.append(f"the {method}'s request body is left out: a {method} sends none")
        body = None
    if body is not None:
        props = (
            body.get("properties") if body.get("type") == "object" or "properties" in body else None
        )
        if isinstance(props, dict):
            # The schema's required fields are required whenever a body is sent, and a function
            # always sends its body.
            required = set(body.get("required") or [])
            for name, schema in props.items():
                if is_file(schema):
                    b.warnings.append(
                        f"the file field {name!r} is left out: functions send no files"
                    )
                    continue
                if kind in (FORM, MULTIPART) and is_nested(schema):
                    b.warnings.append(
                        f"the form field {name!r} is a nested object or list of objects, which "
                        "a form body cannot carry here (it would be sent as JSON text): left out"
                    )
                    continue
                prop = b.add(name, schema, name in required, "body")
                template[name] = specifier(prop, schema)
        else:
            prop = b.add("body", body, body_required, "body")
            template = specifier(prop, body)  # type: ignore[assignment]
            b.warnings.append("the request body is not an object: it is one parameter, 'body'")
        if kind in (FORM, MULTIPART):
            headers["Content-Type"] = kind
    auth = security_of(raw, doc, version)
    headers.update(auth.headers)
    b.warnings += auth.notes
    for key, value in auth.query.items():
        if query_method:
            template[key] = value
        else:
            fixed_query.append(f"{key}={value}")
    servers = raw.get("servers") or item.get("servers")  # OpenAPI 3: per operation or path
    if version != "2.0" and servers and not base_given:
        base = server_base_url({"servers": servers}, version, None, b.warnings)
    url = base + url_path
    if fixed_query:
        url += "?" + "&".join(fixed_query)
    summary = plain_text(raw.get("summary"))
    detail = first_paragraph(raw.get("description"))
    if summary and detail and detail.lower().rstrip(".") != summary.lower().rstrip("."):
        description = f"{summary.rstrip('.')}. {detail}"
    else:
        description = summary or detail
    if not description:
        description = f"Calls {op.label}. {FROM_CURL_TODO} (e.g. 'Use when the caller asks ...')."
        b.warnings.append(
            "the operation has no summary or description: write when the agent should call it "
            "(voicefn validate warns until then)"
        )
    doc_out = {
        "name": _function_name(op),
        "description": description[:1024],
        "phase": "in_call",
        "parameters": {
            "type": "object",
            "properties": b.properties,
            **({"required": b.required} if b.required else {}),
        },
        "action": {
            "type": "http",
            "method": method,
            "url": url,
            "param": template,
            "headers": headers,
        },
    }
    return doc_out, b.warnings, auth.variables
