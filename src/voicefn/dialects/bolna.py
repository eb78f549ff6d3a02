"""Bolna's custom function (``"key": "custom_task"``), seeds 001/002."""

from __future__ import annotations

from typing import Any

from ..spec import Function
from ..validation import Locate, Problem, json_path
from ._common import drop_none, prefix_locator, repeat_loss, unknown_keys

NAME = "bolna"
TOP_KEYS = ("name", "description", "pre_call_message", "parameters", "key", "value")
VALUE_KEYS = (
    "method",
    "param",
    "url",
    "api_token",
    "headers",
    "pre_call_webhook_param",
    "pre_call_webhook_url",
)

locate: Locate = prefix_locator(
    {
        ("filler",): ("pre_call_message",),
        ("action",): ("value",),
        ("action", "type"): ("key",),
        ("action", "timeout_ms"): ("value",),
        ("phase",): (),
    }
)


def detect(data: dict[str, Any]) -> bool:
    from . import SIGNS  # the registry's sign (detection imports no dialect module)

    return SIGNS["bolna"](data)


def to_canonical(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    problems = unknown_keys(data, TOP_KEYS)
    if data.get("key") != "custom_task":
        problems.append(
            Problem(
                json_path(("key",)),
                'Bolna custom functions must have "key": "custom_task" exactly',
                'set "key": "custom_task"',
                data.get("key"),
            )
        )
    value = data.get("value")
    action: Any = value
    if isinstance(value, dict):
        problems += unknown_keys(value, VALUE_KEYS, ("value",))
        action = {"type": "http", **{k: v for k, v in value.items() if k in VALUE_KEYS}}
        action.setdefault("headers", {})
        if action.get("headers") is None:
            action["headers"] = {}
    elif value is None:
        problems.append(
            Problem("$.value", "required field is missing", "add the API configuration object")
        )
    doc = drop_none(
        {
            "name": data.get("name"),
            "description": data.get("description", ""),
            "phase": "in_call",
            "parameters": data.get("parameters", {"type": "object", "properties": {}}),
            "filler": data.get("pre_call_message") or None,
            "action": action,
        }
    )
    return doc, problems


def from_function(f: Function) -> tuple[dict[str, Any], list[str]]:
    lost: list[str] = repeat_loss(f)
    a = f.http
    if f.phase != "in_call":
        lost.append(f"phase {f.phase!r} (Bolna custom functions are in-call)")
    if isinstance(f.filler, dict) and len(f.filler) > 1:
        lost.append("filler lines in other languages (Bolna has one pre_call_message)")
    if a.timeout_ms != 5000:
        lost.append(f"timeout_ms={a.timeout_ms} (Bolna has no per-function timeout)")
    param = a.param
    if param is None:  # Bolna needs an explicit template: send every argument under its name.
        spec = {"integer": "i", "number": "f"}
        param = {
            name: f"%({name}){spec.get(str(p.get('type')) if isinstance(p, dict) else '', 's')}"
            for name, p in f.properties.items()
        }
    value = drop_none(
        {
            "method": a.method,
            "param": param,
            "url": a.url,
            "api_token": a.token,
            "headers": dict(a.headers),
            "pre_call_webhook_param": a.pre_call_webhook_param,
            "pre_call_webhook_url": a.pre_call_webhook_url,
        }
    )
    doc = drop_none(
        {
            "name": f.name,
            "description": f.description,
            "pre_call_message": f.filler_for(),
            "parameters": f.parameters,
            "key": "custom_task",
            "value": value,
        }
    )
    return doc, lost
