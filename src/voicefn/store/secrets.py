"""Which values of a document are secrets, masking them, and putting them back.

A function's secrets are its ``action.api_token``, every header (and MCP command environment
variable) whose name says it carries a credential (``Authorization``, ``X-Api-Key``, ``API_TOKEN``,
... as :func:`voicefn.redaction.is_sensitive_header` decides) or that its owner marked secret, and
credential-named values another platform's format carried (``platform_fields``). An agent's are the variables so named or marked.

Stored documents hold :data:`MASK` in those places; the values are kept apart, encrypted. A
document written back with :data:`MASK` in a secret's place keeps the stored value, so an export
(or a GET) can be edited and sent back without the secrets.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from ..redaction import is_sensitive_header

MASK = "[secret]"

Place = tuple[str, ...]


def place_key(place: Place) -> str:
    return json.dumps(list(place), ensure_ascii=False)


def _marked(name: str, marked: Iterable[str]) -> bool:
    lowered = name.lower()
    return is_sensitive_header(name) or any(lowered == m.lower() for m in marked)


def _kept_places(value: Any, place: Place, depth: int = 0) -> list[Place]:
    """Credential-named strings in what another platform's format carried (``platform_fields``:
    Vapi's ``server.secret``, ...), at any depth."""
    if not isinstance(value, dict) or depth > 6:
        return []
    out: list[Place] = []
    for key, item in value.items():
        if isinstance(item, str) and is_sensitive_header(str(key)):
            out.append((*place, str(key)))
        else:
            out += _kept_places(item, (*place, str(key)), depth + 1)
    return out


def function_places(document: dict[str, Any], marked: Iterable[str] = ()) -> list[Place]:
    """The places of the secrets in a canonical function document."""
    places = _kept_places(document.get("platform_fields"), ("platform_fields",))
    action = document.get("action")
    if not isinstance(action, dict):
        return places
    if action.get("api_token") is not None:
        places.append(("action", "api_token"))
    names = list(marked)
    for key in ("headers", "env"):  # HTTP and MCP headers; an MCP command's environment
        values = action.get(key)
        if isinstance(values, dict):
            places += [("action", key, k) for k in values if _marked(k, names)]
    return places


def agent_places(document: dict[str, Any], marked: Iterable[str] = ()) -> list[Place]:
    """The places of the secrets in an agent document (its secret variables)."""
    variables = document.get("variables")
    if not isinstance(variables, dict):
        return []
    names = list(marked)
    return [("variables", k) for k in variables if _marked(k, names)]


def seal(
    document: dict[str, Any], places: list[Place], previous: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], list[Place]]:
    """Mask ``places`` in a copy of ``document``.

    Returns the masked document, the secrets by :func:`place_key`, and the places that hold
    :data:`MASK` with no ``previous`` value to keep (the caller reports them).
    """
    masked = copy.deepcopy(document)
    secrets: dict[str, Any] = {}
    missing: list[Place] = []
    for place in places:
        parent = _parent(masked, place)
        if parent is None:
            continue
        value = parent[place[-1]]
        key = place_key(place)
        if value == MASK:
            if key in previous:
                secrets[key] = previous[key]
            else:
                missing.append(place)
        else:
            secrets[key] = value
        parent[place[-1]] = MASK
    return masked, secrets, missing


def unseal(document: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """The document with its secrets in place (for running it, or an explicit export)."""
    if not secrets:
        return document
    out = copy.deepcopy(document)
    for key, value in secrets.items():
        place = tuple(json.loads(key))
        parent = _parent(out, place)
        if parent is not None and parent[place[-1]] == MASK:
            parent[place[-1]] = value
    return out


def secret_values(secrets: dict[str, Any]) -> list[str]:
    """The secret values as text, for scrubbing them out of records."""
    return [v if isinstance(v, str) else json.dumps(v) for v in secrets.values()]


def _parent(document: dict[str, Any], place: Place) -> dict[str, Any] | None:
    node: Any = document
    for part in place[:-1]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if not isinstance(node, dict) or place[-1] not in node:
        return None
    return node
