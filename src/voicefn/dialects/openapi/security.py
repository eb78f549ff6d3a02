"""Security requirements as headers or query parameters filled from context variables: no
secret is invented, a note says what to set."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ...context import SYSTEM_VARIABLES
from .refs import deref
from .text import snake_case


@dataclass
class Auth:
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


def security_of(op: Mapping[str, Any], doc: Mapping[str, Any], version: str) -> Auth:
    schemes: dict[str, Any] = (
        doc.get("securityDefinitions") or {}
        if version == "2.0"
        else (doc.get("components") or {}).get("securitySchemes") or {}
    )
    requirements = op.get("security", doc.get("security")) or []
    auth = Auth()
    if not requirements or any(req == {} for req in requirements):
        return auth
    usable: list[tuple[int, dict[str, Any]]] = []
    for req in requirements:
        if not isinstance(req, dict):
            continue
        kinds = [_scheme_kind(deref(schemes.get(name) or {}, doc)) for name in req]
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
        scheme = deref(schemes[name], doc)
        kind = _scheme_kind(scheme)
        var = snake_case(name)
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
