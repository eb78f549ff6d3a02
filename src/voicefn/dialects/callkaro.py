"""CallKaro's basic-mode in-call function, seed 003.

CallKaro publishes no JSON format for basic mode, only its form: Name, Description, API URL,
Method, Headers and Parameters (key, type string|number, description). This dialect mirrors that
form field for field. Parameters are required unless ``"required": false``; an ``Authorization``
header is the function's api_token (so it is treated as a secret).
"""

from __future__ import annotations

from typing import Any

from ..spec import Function
from ..validation import Locate, Path, Problem, json_path
from ._common import drop_none, repeat_loss, unknown_keys

NAME = "callkaro"
KEYS = ("type", "mode", "name", "description", "api_url", "method", "headers", "parameters")
PARAM_KEYS = ("key", "type", "description", "required")
TYPES = ("string", "number", "integer", "boolean")


def detect(data: dict[str, Any]) -> bool:
    from . import SIGNS  # the registry's sign (detection imports no dialect module)

    return SIGNS["callkaro"](data)


def _headers(raw: Any, problems: list[Problem]) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        out = {}
        for i, h in enumerate(raw):
            if isinstance(h, dict) and "key" in h:
                out[str(h["key"])] = str(h.get("value", ""))
            else:
                problems.append(
                    Problem(
                        json_path(("headers", i)),
                        'a header must be {"key": ..., "value": ...}',
                        "give key and value",
                        h,
                    )
                )
        return out
    problems.append(
        Problem(
            "$.headers",
            "headers must be an object or a list of {key, value}",
            'use {"Authorization": "Bearer ..."}',
            raw,
        )
    )
    return {}


def locate_for(data: dict[str, Any]) -> Locate:
    index = {
        p.get("key"): i for i, p in enumerate(data.get("parameters") or []) if isinstance(p, dict)
    }

    def locate(path: Path) -> Path:
        if path[:1] == ("filler",) or path[:1] == ("phase",):
            return ()
        if path[:2] == ("action", "url"):
            return ("api_url", *path[2:])
        if path[:2] == ("action", "api_token"):
            return ("headers", "Authorization")
        if path[:1] == ("action",):
            return path[1:]
        if path[:2] == ("parameters", "properties") and len(path) >= 3:
            i = index.get(path[2])
            return ("parameters", i, *path[3:]) if i is not None else ("parameters",)
        if path[:2] == ("parameters", "required"):
            return ("parameters",)
        return path

    return locate


def to_canonical(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    problems = unknown_keys(data, KEYS)
    if data.get("type", "in_call") != "in_call":
        problems.append(
            Problem(
                "$.type",
                "only in-call basic functions have this form",
                'set "type": "in_call"',
                data.get("type"),
            )
        )
    if data.get("mode", "basic") != "basic":
        problems.append(
            Problem(
                "$.mode",
                "advanced (Python) functions are not HTTP functions",
                'set "mode": "basic"',
                data.get("mode"),
            )
        )
    properties: dict[str, Any] = {}
    required: list[str] = []
    raw_params = data.get("parameters") or []
    if not isinstance(raw_params, list):
        problems.append(
            Problem(
                "$.parameters",
                "parameters must be a list of {key, type, description}",
                "write a list",
                raw_params,
            )
        )
        raw_params = []
    for i, p in enumerate(raw_params):
        if not isinstance(p, dict) or not isinstance(p.get("key"), str):
            problems.append(
                Problem(
                    json_path(("parameters", i)),
                    "a parameter needs a key (its name)",
                    'write {"key": "product_id", "type": "string", "description": "..."}',
                    p,
                )
            )
            continue
        problems += unknown_keys(p, PARAM_KEYS, ("parameters", i))
        ptype = p.get("type", "string")
        if ptype not in TYPES:
            problems.append(
                Problem(
                    json_path(("parameters", i, "type")),
                    f"unsupported type {ptype!r}",
                    "use string or number",
                    ptype,
                )
            )
        properties[p["key"]] = drop_none({"type": ptype, "description": p.get("description")})
        if p.get("required", True):
            required.append(p["key"])
    headers = _headers(data.get("headers"), problems)
    token = next((headers.pop(k) for k in list(headers) if k.lower() == "authorization"), None)
    action = drop_none(
        {
            "type": "http",
            "method": data.get("method"),
            "url": data.get("api_url"),
            "api_token": token,
            "headers": headers,
        }
    )
    doc = {
        "name": data.get("name"),
        "description": data.get("description", ""),
        "phase": "in_call",
        "parameters": {"type": "object", "properties": properties, "required": required},
        "action": action,
    }
    return drop_none(doc), problems


def from_function(f: Function) -> tuple[dict[str, Any], list[str]]:
    a = f.http
    lost: list[str] = repeat_loss(f)
    if f.phase != "in_call":
        lost.append(f"phase {f.phase!r} (this form is for in-call functions)")
    extra = sorted(set(f.parameters) - {"type", "properties", "required"})
    if extra:
        lost.append(f"parameters keywords {', '.join(extra)}")
    params = []
    for name, p in f.properties.items():
        ptype = p.get("type", "string") if isinstance(p, dict) else "string"
        if ptype not in TYPES:
            lost.append(f"parameter {name!r} of type {ptype!r} (sent as a string)")
            ptype = "string"
        keywords = sorted(set(p) - {"type", "description"}) if isinstance(p, dict) else []
        if keywords:
            lost.append(f"parameter {name!r} keywords {', '.join(keywords)}")
        entry: dict[str, Any] = drop_none(
            {"key": name, "type": ptype, "description": p.get("description")}
        )
        if name not in f.required:
            entry["required"] = False
        params.append(entry)
    if a.param is not None:
        lost.append("the param template (CallKaro basic mode sends the parameters as they are)")
    if a.pre_call_webhook_param is not None or a.pre_call_webhook_url is not None:
        lost.append("the pre-call webhook")
    if f.filler is not None:
        lost.append("the filler line")
    if a.timeout_ms != 5000:
        lost.append("timeout_ms")
    headers = dict(a.headers)
    if a.token is not None:
        headers["Authorization"] = a.token
    doc = {
        "type": "in_call",
        "mode": "basic",
        "name": f.name,
        "description": f.description,
        "api_url": a.url,
        "method": a.method,
        "headers": headers,
        "parameters": params,
    }
    return doc, lost
