"""The document: reading it (JSON/YAML), its version, its operations and its server URL."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .refs import deref
from .text import plain_text

METHODS: Final = ("get", "post", "put", "patch", "delete")
OTHER_METHODS: Final = ("head", "options", "trace")


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


class Skip(Exception):
    """This operation cannot be a function (the message says why)."""


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


def document_version(doc: Mapping[str, Any]) -> str:
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
        item = deref(item, doc)
        if not isinstance(item, dict):
            continue
        for method in (*METHODS, *OTHER_METHODS):
            op = item.get(method)
            if isinstance(op, dict):
                out.append(
                    Operation(
                        method,
                        str(path),
                        op.get("operationId") if isinstance(op.get("operationId"), str) else None,
                        plain_text(op.get("summary")),
                    )
                )
    return out


def server_base_url(
    doc: Mapping[str, Any], version: str, given: str | None, notes: list[str]
) -> str:
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
