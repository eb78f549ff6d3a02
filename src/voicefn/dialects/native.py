"""voicefn's own format: the canonical model as JSON/YAML. It carries every field."""

from __future__ import annotations

from typing import Any

from ..spec import Function
from ..validation import Locate, Problem

NAME = "voicefn"


def locate(path: Any) -> Any:
    return path


def detect(data: dict[str, Any]) -> bool:
    from . import SIGNS  # the registry's sign (detection imports no dialect module)

    return SIGNS["voicefn"](data)


def to_canonical(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    return data, []


def from_function(f: Function) -> tuple[dict[str, Any], list[str]]:
    doc = f.to_dict()
    action = doc["action"]
    for key in ("api_token", "param", "pre_call_webhook_param", "pre_call_webhook_url"):
        if action.get(key) is None:
            action.pop(key, None)
    if doc.get("filler") is None:
        doc.pop("filler")
    return doc, []


_: Locate = locate
