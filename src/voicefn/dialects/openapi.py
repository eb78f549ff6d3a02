"""Import functions from an OpenAPI 3.0/3.1 or Swagger 2.0 document: one per operation.

``from_openapi(spec)`` reads the document (a dict, or a JSON/YAML file) and returns an
:class:`OpenAPIImport`: the functions, each with the warnings of its operation, and the
operations it could not turn into a function with the reason. Nothing is fetched or sent.

Decisions:

- Name: the ``operationId`` (characters other than letters, digits, ``_`` and ``-`` become
  ``_``; at most 64), else ``<method>_<path words>``. A name taken twice gets ``_2``, ``_3``.
- Description: the summary, then the description's first paragraph (Markdown links and HTML
  tags removed); none at all: a TODO that ``voicefn validate`` warns about.
- URL: the first server (OpenAPI 3: server variables at their defaults; Swagger 2:
  ``schemes``/``host``/``basePath``, https first) or ``base_url``; path templates become
  ``%(name)s``.
- Parameters: path and query parameters, and the request body's properties (JSON,
  form-urlencoded or multipart), become the function's parameters, with their schemas
  (``$ref`` inlined to a bounded depth, ``allOf`` merged, ``oneOf`` read as ``anyOf``, 3.0's
  ``nullable`` as a ``null`` type, ``readOnly`` properties left out). A GET/DELETE sends its query
  parameters through ``param``; other methods send the body through ``param`` and keep required
  query parameters in the URL. A parameter named like a system variable (``agent_id``...) is
  renamed ``target_<name>``: the engine would fill it with the call's own value.
- Not mapped, each with a warning: header and cookie parameters (nothing the LLM says may set a
  header), optional query parameters of a POST/PUT/PATCH/DELETE-with-body, file uploads, nested
  objects in a form body, request bodies that are not JSON or a form, callbacks, webhooks, links,
  external ``$ref``s (files or URLs), mutual TLS.
- Security: the operation's (else the document's) first usable requirement. Bearer, OAuth 2 and
  OpenID Connect become ``Authorization: Bearer {<scheme>}``; basic becomes
  ``Authorization: Basic {<scheme>}``; an API key becomes a header, query or cookie with
  ``{<scheme>}``. ``<scheme>`` is the scheme's name in snake_case, a context variable the call
  must set (the agent's ``variables``, ``--var``): no secret is ever invented, and a warning says
  what to put there.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from ..context import SYSTEM_VARIABLES
from ..spec import Function
from ..validation import FROM_CURL_TODO, did_you_mean, validate_document

__all__ = [
    "ImportedOperation",
    "OpenAPIError",
    "OpenAPIImport",
    "Operation",
    "from_openapi",
    "inline_refs",
    "list_operations",
    "load_document",
    "resolve_pointer",
]

#: How many ``$ref``s deep a schema is inlined; deeper (or recursive) ones become a plain type.
MAX_REF_DEPTH: Final = 6
METHODS: Final = ("get", "post", "put", "patch", "delete")
_OTHER_METHODS: Final = ("head", "options", "trace")
_NAME_BAD: Final = re.compile(r"[^a-zA-Z0-9_-]+")
_PROP_BAD: Final = re.compile(r"[^a-zA-Z0-9_.-]")
_PATH_PARAM: Final = re.compile(r"\{([^{}]+)\}")
_MD_LINK: Final = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_HTML_TAG: Final = re.compile(r"<[^>]+>")
_SCHEMA_KEYS: Final = frozenset(
    {
        "type", "description", "enum", "const", "default", "items", "properties", "required",
        "additionalProperties", "format", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
        "uniqueItems", "anyOf", "title", "examples", "multipleOf",
    }
)  # fmt: skip
_SWAGGER2_PARAM_SCHEMA: Final = (
    "type", "format", "items", "enum", "default", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "uniqueItems", "multipleOf",
)  # fmt: skip
FORM: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"


class OpenAPIError(ValueError):
    """The document is not an OpenAPI/Swagger document this importer can read."""


@dataclass(frozen=True)
class Operation:
    """One operation of the document: ``GET /pets/{petId}`` (``operationId`` when it has one)."""

    method: str
    path: str
    operation_id: str | None
    summary: str

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


@dataclass
class ImportedOperation:
    """A function made from one operation, and what of the operation it could not carry."""

    operation: Operation
    function: Function
    warnings: list[str] = field(default_factory=list)


@dataclass
class OpenAPIImport:
    """Every function the document gave, the operations it could not map and why, and the
    warnings about the document as a whole."""

    title: str
    version: str
    functions: list[ImportedOperation] = field(default_factory=list)
    skipped: list[tuple[Operation, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- references


def resolve_pointer(root: Any, ref: str) -> Any:
    """What a local JSON reference (``#/components/schemas/Pet``) points to, or None."""
    if not ref.startswith("#"):
        return None
    node = root
    for raw in ref[1:].split("/")[1:] if ref not in ("#", "#/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def inline_refs(node: Any, root: Any, seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``$ref`` replaced by a copy of its target (siblings of the
    ``$ref`` win). A recursive reference, or one deeper than :data:`MAX_REF_DEPTH`, becomes the
    target's bare type, so the result is always finite. An external one stays as it is."""
    if isinstance(node, list):
        return [inline_refs(item, root, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    rest = {k: inline_refs(v, root, seen) for k, v in node.items() if k != "$ref"}
    if not isinstance(ref, str):
        return rest
    target = resolve_pointer(root, ref)
    if not isinstance(target, dict):
        return node if not ref.startswith("#") else (rest or {"type": "object"})
    if ref in seen or len(seen) >= MAX_REF_DEPTH:
        cut: dict[str, Any] = {"type": target.get("type", "object")}
        if isinstance(target.get("description"), str):
            cut["description"] = target["description"]
        return {**cut, **rest}
    return {**inline_refs(target, root, (*seen, ref)), **rest}


def _deref(node: Any, root: Any) -> Any:
    """A parameter/requestBody object that may itself be a ``$ref``."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 10:
        target = resolve_pointer(root, node["$ref"])
        if target is None:
            return node
        node, seen = target, seen + 1
    return node


def _external_refs(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            out.add(ref)
        for value in node.values():
            _external_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _external_refs(value, out)
    return out


# -------------------------------------------------------------------------------- schemas


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
            out[key] = _plain(value)
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


def _is_file(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "file" or schema.get("format") in ("binary", "byte"):
        return True
    items = schema.get("items")
    return schema.get("type") == "array" and _is_file(items)


def _is_nested(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "object" or "properties" in schema:
        return True
    if schema.get("type") == "array":
        return _is_nested(schema.get("items"))
    return any(_is_nested(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


# --------------------------------------------------------------------------------- text


def _plain(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    text = _MD_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def _first_paragraph(text: Any, limit: int = 400) -> str:
    if not isinstance(text, str):
        return ""
    para = _plain(re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0])
    if len(para) > limit:
        cut = para[:limit].rsplit(" ", 1)[0]
        para = f"{cut}..."
    return para


def _snake(text: str) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower() or "credential"


def _function_name(op: Operation) -> str:
    if op.operation_id:
        name = _NAME_BAD.sub("_", op.operation_id).strip("_")
        if name:
            return name[:64]
    words = [w for w in re.split(r"[/{}.\-]+", op.path) if w]
    return _NAME_BAD.sub("_", "_".join([op.method, *words])).strip("_")[:64] or op.method


# ------------------------------------------------------------------------------ document


def load_document(source: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The parsed document: a dict as it is, or a JSON/YAML file."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml") or not text.lstrip().startswith(("{", "[")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise OpenAPIError(f"{path.name} is not valid JSON or YAML: {exc}") from None
    if not isinstance(data, dict):
        raise OpenAPIError(f"{path.name} does not hold an OpenAPI document (an object)")
    return data


def _version(doc: Mapping[str, Any]) -> str:
    if str(doc.get("swagger", "")).startswith("2"):
        return "2.0"
    openapi = str(doc.get("openapi", ""))
    if openapi.startswith(("3.0", "3.1")):
        return openapi
    found = doc.get("openapi") or doc.get("swagger")
    raise OpenAPIError(
        "not an OpenAPI 3.0/3.1 or Swagger 2.0 document"
        + (f" (it says {found!r})" if found else " (no 'openapi' or 'swagger' field)")
    )


def list_operations(doc: Mapping[str, Any]) -> list[Operation]:
    """Every operation in path order (``head``/``options``/``trace`` included)."""
    out: list[Operation] = []
    paths = doc.get("paths") or {}
    if not isinstance(paths, dict):
        return out
    for path, item in paths.items():
        item = _deref(item, doc)
        if not isinstance(item, dict):
            continue
        for method in (*METHODS, *_OTHER_METHODS):
            op = item.get(method)
            if isinstance(op, dict):
                out.append(
                    Operation(
                        method,
                        str(path),
                        op.get("operationId") if isinstance(op.get("operationId"), str) else None,
                        _plain(op.get("summary")),
                    )
                )
    return out


def _base_url(doc: Mapping[str, Any], version: str, given: str | None, notes: list[str]) -> str:
    if given:
        return given.rstrip("/")
    if version == "2.0":
        host = doc.get("host")
        if not isinstance(host, str) or not host:
            raise OpenAPIError("the document names no host; pass the API's base URL (--base-url)")
        schemes = doc.get("schemes") or ["https"]
        scheme = "https" if "https" in schemes else str(schemes[0])
        if scheme != "https":
            notes.append(f"the document serves only {scheme}; the functions use {scheme}://{host}")
        return f"{scheme}://{host}{str(doc.get('basePath') or '').rstrip('/')}"
    servers = doc.get("servers") or []
    server = servers[0] if servers and isinstance(servers[0], dict) else {}
    url = str(server.get("url") or "")
    for name, var in (server.get("variables") or {}).items():
        if isinstance(var, dict) and "default" in var:
            url = url.replace("{" + name + "}", str(var["default"]))
    if len(servers) > 1:
        notes.append(f"the document lists {len(servers)} servers; the functions use {url}")
    if not url.startswith(("http://", "https://")):
        raise OpenAPIError(
            f"the document's server URL is {url or 'missing'!r}, not an absolute URL; pass the "
            "API's base URL (--base-url)"
        )
    return url.rstrip("/")


# ------------------------------------------------------------------------------ security


@dataclass
class _Auth:
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    variables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_PREFERENCE: Final = {
    "apiKey": 0,
    "http-bearer": 0,
    "http-basic": 1,
    "oauth2": 2,
    "openIdConnect": 2,
}


def _scheme_kind(scheme: Mapping[str, Any]) -> str:
    kind = str(scheme.get("type", ""))
    if kind == "http":
        return f"http-{str(scheme.get('scheme', '')).lower()}"
    if kind == "basic":  # Swagger 2
        return "http-basic"
    return kind


def _security(op: Mapping[str, Any], doc: Mapping[str, Any], version: str) -> _Auth:
    schemes: dict[str, Any] = (
        doc.get("securityDefinitions") or {}
        if version == "2.0"
        else (doc.get("components") or {}).get("securitySchemes") or {}
    )
    requirements = op.get("security", doc.get("security")) or []
    auth = _Auth()
    if not requirements or any(req == {} for req in requirements):
        return auth
    usable: list[tuple[int, dict[str, Any]]] = []
    for req in requirements:
        if not isinstance(req, dict):
            continue
        kinds = [_scheme_kind(_deref(schemes.get(name) or {}, doc)) for name in req]
        if kinds and all(k in _PREFERENCE for k in kinds):
            usable.append((max(_PREFERENCE[k] for k in kinds), req))
    if not usable:
        names = ", ".join(n for req in requirements if isinstance(req, dict) for n in req)
        auth.notes.append(
            f"security {names} cannot be mapped (mutual TLS or an unknown scheme): add the "
            "credentials to the function's headers yourself"
        )
        return auth
    usable.sort(key=lambda pair: pair[0])
    for name in usable[0][1]:
        scheme = _deref(schemes[name], doc)
        kind = _scheme_kind(scheme)
        var = _snake(name)
        if var in SYSTEM_VARIABLES:
            var = f"{var}_credential"
        auth.variables.append(var)
        if kind == "apiKey":
            where, key = str(scheme.get("in", "header")), str(scheme.get("name", name))
            if where == "query":
                auth.query[key] = "{" + var + "}"
            elif where == "cookie":
                auth.headers["Cookie"] = f"{key}={{{var}}}"
            else:
                auth.headers[key] = "{" + var + "}"
            what = f"the API key ({where} {key})"
        elif kind == "http-basic":
            auth.headers["Authorization"] = "Basic {" + var + "}"
            what = "base64 of 'user:password' (printf '%s' 'user:password' | base64)"
        else:
            auth.headers["Authorization"] = "Bearer {" + var + "}"
            what = "the bearer token"
            if kind in ("oauth2", "openIdConnect"):
                what = "an OAuth access token (voicefn does not run the OAuth flow or refresh it)"
        auth.notes.append(
            f"security {name}: set the context variable {var} to {what}: --var {var}=..., the "
            f"agent's variables, or CallContext(variables={{{var!r}: ...}})"
        )
    if len(usable) > 1 or len(requirements) > 1:
        chosen = ", ".join(usable[0][1])
        auth.notes.append(f"the operation accepts several security schemes; {chosen} is used")
    return auth


# ------------------------------------------------------------------------------ operation


@dataclass
class _Builder:
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


def _specifier(prop: str, schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    conv = {"integer": "i", "number": "f"}.get(kind, "s") if isinstance(kind, str) else "s"
    return f"%({prop}){conv}"


def _parameters(item: Mapping[str, Any], op: Mapping[str, Any], doc: Any) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*(item.get("parameters") or []), *(op.get("parameters") or [])]:
        param = _deref(raw, doc)
        if isinstance(param, dict) and isinstance(param.get("name"), str):
            merged[(param["name"], str(param.get("in")))] = param
    return list(merged.values())


def _param_schema(param: Mapping[str, Any], doc: Any, version: str) -> dict[str, Any]:
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
    description = _plain(param.get("description"))
    if description and "description" not in schema:
        schema = {**schema, "description": description}
    return schema


def _body(
    op: Mapping[str, Any], params: list[dict[str, Any]], doc: Any, version: str, b: _Builder
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
                props[p["name"]] = _param_schema(p, doc, version)
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
    request = _deref(op.get("requestBody"), doc)
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
            raise _Skip(f"its request body is {', '.join(content)}, which a function cannot send")
        b.warnings.append(f"the request body is {chosen}; the function sends JSON")
        chosen = "application/json"
    media = content.get(chosen) or {}
    raw = media.get("schema") if isinstance(media, dict) else None
    schema = clean_schema(
        inline_refs(raw or {"type": "object"}, doc), nullable_keyword=version != "3.1"
    )
    kind = chosen if chosen in (FORM, MULTIPART) else "application/json"
    return schema, kind, bool(request.get("required"))


class _Skip(Exception):
    """This operation cannot be a function (the message says why)."""


def _convert(
    op: Operation, doc: dict[str, Any], version: str, base: str, base_given: bool = False
) -> tuple[dict[str, Any], list[str], list[str]]:
    item = _deref(doc["paths"][op.path], doc)
    raw = item[op.method]
    b = _Builder(op)
    if op.method in _OTHER_METHODS:
        raise _Skip(
            f"the method {op.method.upper()} is not one a function can use (GET, POST, PUT, PATCH, DELETE)"
        )
    if raw.get("callbacks"):
        b.warnings.append("its callbacks (requests the API sends back later) are not mapped")
    if raw.get("deprecated"):
        b.warnings.append("the operation is deprecated")
    params = _parameters(item, raw, doc)
    method = op.method.upper()
    query_method = method in ("GET", "DELETE")
    url_path = op.path
    for p in params:
        if p.get("in") != "path":
            continue
        prop = b.add(p["name"], _param_schema(p, doc, version), True, "path")
        url_path = url_path.replace("{" + p["name"] + "}", _specifier(prop, b.properties[prop]))
    for leftover in _PATH_PARAM.findall(url_path):
        prop = b.add(leftover, {"type": "string"}, True, "path")
        url_path = url_path.replace("{" + leftover + "}", f"%({prop})s")
        b.warnings.append(f"the path parameter {leftover!r} is not declared: it is a string")
    template: dict[str, Any] = {}
    fixed_query: list[str] = []
    for p in params:
        where, name = p.get("in"), p["name"]
        if where == "query":
            schema = _param_schema(p, doc, version)
            if _is_nested(schema) and query_method:
                b.warnings.append(
                    f"the query parameter {name!r} is an object: it is sent as JSON text"
                )
            if query_method:
                prop = b.add(name, schema, bool(p.get("required")), "query")
                template[name] = _specifier(prop, schema)
            elif p.get("required"):
                prop = b.add(name, schema, True, "query")
                fixed_query.append(f"{name}={_specifier(prop, schema)}")
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
    body, kind, body_required = _body(raw, params, doc, version, b)
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
                if _is_file(schema):
                    b.warnings.append(
                        f"the file field {name!r} is left out: functions send no files"
                    )
                    continue
                if kind in (FORM, MULTIPART) and _is_nested(schema):
                    b.warnings.append(
                        f"the form field {name!r} is a nested object or list of objects, which "
                        "a form body cannot carry here (it would be sent as JSON text): left out"
                    )
                    continue
                prop = b.add(name, schema, name in required, "body")
                template[name] = _specifier(prop, schema)
        else:
            prop = b.add("body", body, body_required, "body")
            template = _specifier(prop, body)  # type: ignore[assignment]
            b.warnings.append("the request body is not an object: it is one parameter, 'body'")
        if kind in (FORM, MULTIPART):
            headers["Content-Type"] = kind
    auth = _security(raw, doc, version)
    headers.update(auth.headers)
    b.warnings += auth.notes
    for key, value in auth.query.items():
        if query_method:
            template[key] = value
        else:
            fixed_query.append(f"{key}={value}")
    servers = raw.get("servers") or item.get("servers")  # OpenAPI 3: per operation or path
    if version != "2.0" and servers and not base_given:
        base = _base_url({"servers": servers}, version, None, b.warnings)
    url = base + url_path
    if fixed_query:
        url += "?" + "&".join(fixed_query)
    summary = _plain(raw.get("summary"))
    detail = _first_paragraph(raw.get("description"))
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


def _select(
    operations: list[Operation], wanted: Sequence[str]
) -> tuple[list[Operation], list[str]]:
    """The operations ``wanted`` names (operationId or ``METHOD /path``), and the unknown ones."""
    if not wanted:
        return operations, []
    by_key: dict[str, Operation] = {}
    for op in operations:
        by_key[op.label.lower()] = op
        if op.operation_id:
            by_key[op.operation_id.lower()] = op
    chosen: list[Operation] = []
    unknown: list[str] = []
    for raw in wanted:
        found = by_key.get(" ".join(raw.split()).lower())
        if found is None:
            unknown.append(raw)
        elif found not in chosen:
            chosen.append(found)
    return chosen, unknown


def from_openapi(
    source: Mapping[str, Any] | str | Path,
    *,
    operations: Sequence[str] = (),
    base_url: str | None = None,
) -> OpenAPIImport:
    """Functions from an OpenAPI 3.0/3.1 or Swagger 2.0 document (see the module docstring).

    ``operations`` picks some (``operationId`` or ``"GET /pets/{petId}"``); an unknown one raises
    :class:`OpenAPIError` with a did-you-mean. ``base_url`` replaces the document's server.
    """
    doc = load_document(source)
    version = _version(doc)
    info = doc.get("info")
    title = info.get("title") if isinstance(info, dict) else None
    result = OpenAPIImport(str(title or ""), version)
    if base_url is not None:
        try:
            parsed = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise OpenAPIError(f"--base-url {base_url!r} is not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise OpenAPIError(f"--base-url {base_url!r} must be an absolute http(s) URL")
    all_ops = list_operations(doc)
    chosen, unknown = _select(all_ops, operations)
    if unknown:
        names = [o.operation_id or o.label for o in all_ops]
        hints = []
        for u in unknown:
            hint = did_you_mean(u, names)
            hints.append(f"{u!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
        raise OpenAPIError(f"no operation {', '.join(hints)} in the document")
    base = _base_url(doc, version, base_url, result.warnings) if chosen else ""
    external = sorted(_external_refs(doc.get("paths") or {}, set()))
    if external:
        result.warnings.append(
            f"external references are not followed ({', '.join(external[:5])}"
            + (", ..." if len(external) > 5 else "")
            + "): what they point to is read as a plain object"
        )
    if doc.get("webhooks"):
        result.warnings.append(
            f"{len(doc['webhooks'])} webhook(s) are requests the API sends, not operations to call: not mapped"
        )
    if not all_ops:
        result.warnings.append("the document has no operations (no paths)")
    taken: set[str] = set()
    for op in chosen:
        try:
            doc_out, warnings, variables = _convert(op, doc, version, base, base_url is not None)
        except _Skip as exc:
            result.skipped.append((op, str(exc)))
            continue
        name, n = doc_out["name"], 2
        while name in taken:
            name = f"{doc_out['name'][:60]}_{n}"
            n += 1
        if name != doc_out["name"]:
            warnings.append(
                f"the name {doc_out['name']!r} is taken by another operation: it is {name!r}"
            )
            doc_out["name"] = name
        taken.add(name)
        function, problems = validate_document(doc_out, variables=variables)
        if function is None:
            errors = "; ".join(str(p) for p in problems if p.severity == "error")
            result.skipped.append((op, f"the function it makes is not valid: {errors}"))
            continue
        undescribed = [
            p.path.split(".")[-2]
            for p in problems
            if p.severity == "warning" and p.message == "parameter has no description"
        ]
        if undescribed:
            warnings.append(
                "parameters without a description (the LLM reads only their names): "
                + ", ".join(undescribed)
            )
        warnings += [
            str(p)
            for p in problems
            if p.severity == "warning"
            and p.message != "parameter has no description"
            and "is not a system variable" not in p.message  # said with the security notes
            and "TODO" not in p.message  # said above
        ]
        result.functions.append(ImportedOperation(op, function, warnings))
    return result


def summary_lines(result: OpenAPIImport) -> Iterable[str]:
    """What a person should read after an import: document notes, then per operation."""
    yield from result.warnings
    for imported in result.functions:
        for w in imported.warnings:
            yield f"{imported.function.name} ({imported.operation.label}): {w}"
    for op, why in result.skipped:
        yield f"skipped {op.operation_id or op.label} ({op.label}): {why}"
