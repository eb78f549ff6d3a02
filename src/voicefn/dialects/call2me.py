"""Call2Me's function (flat: ``url``, ``speak_during_execution``, ``timeout_ms``), seed 004.

Call2Me sends the LLM's arguments as the request body as they are, so a voicefn function whose
``param`` is ``None`` is exactly a Call2Me function.
"""

from __future__ import annotations

from typing import Any

from ..spec import BUILTINS, BuiltinAction, Function
from ..validation import Locate, Problem
from ._common import drop_none, prefix_locator, repeat_loss, unknown_keys

NAME = "call2me"
KEYS = (
    "name",
    "description",
    "url",
    "method",
    "parameters",
    "speak_during_execution",
    "timeout_ms",
)

locate: Locate = prefix_locator(
    {
        ("filler",): ("speak_during_execution",),
        ("action", "url"): ("url",),
        ("action", "method"): ("method",),
        ("action", "timeout_ms"): ("timeout_ms",),
        ("action",): (),
        ("phase",): (),
    }
)


def detect(data: dict[str, Any]) -> bool:
    from . import SIGNS  # the registry's sign (detection imports no dialect module)

    return SIGNS["call2me"](data)


def to_canonical(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    problems = unknown_keys(data, KEYS)
    if data.get("name") in BUILTINS and "url" not in data:
        return drop_none(
            {
                "name": data["name"],
                "description": data.get("description", ""),
                "parameters": data.get("parameters", {"type": "object", "properties": {}}),
                "filler": data.get("speak_during_execution") or None,
                "action": {"type": "builtin", "builtin": data["name"]},
            }
        ), problems
    action = drop_none(
        {
            "type": "http",
            "method": data.get("method", "POST"),
            "url": data.get("url"),
            "timeout_ms": data.get("timeout_ms"),
        }
    )
    doc = drop_none(
        {
            "name": data.get("name"),
            "description": data.get("description", ""),
            "phase": "in_call",
            "parameters": data.get("parameters", {"type": "object", "properties": {}}),
            "filler": data.get("speak_during_execution") or None,
            "action": action,
        }
    )
    return doc, problems


def from_function(f: Function) -> tuple[dict[str, Any], list[str]]:
    if isinstance(f.action, BuiltinAction):  # "same schema, no url needed"
        doc = {"name": f.action.builtin, "description": f.description, "parameters": f.parameters}
        return doc, [f"the builtin's configuration ({f.name})"]
    a = f.http
    lost: list[str] = repeat_loss(f)
    if f.phase != "in_call":
        lost.append(f"phase {f.phase!r}")
    if a.param is not None:
        lost.append("the param template (Call2Me sends the arguments as they are)")
    if a.api_token is not None or a.headers:
        lost.append("api_token and headers (Call2Me functions carry none)")
    if a.pre_call_webhook_param is not None or a.pre_call_webhook_url is not None:
        lost.append("the pre-call webhook")
    if a.method == "PUT":
        lost.append("method PUT is not one Call2Me documents (GET, POST, PATCH, DELETE)")
    if isinstance(f.filler, dict) and len(f.filler) > 1:
        lost.append("filler lines in other languages")
    doc = drop_none(
        {
            "name": f.name,
            "description": f.description,
            "url": a.url,
            "method": a.method,
            "parameters": f.parameters,
            "speak_during_execution": f.filler_for(),
            "timeout_ms": a.timeout_ms,
        }
    )
    return doc, lost
