"""An LLM's answer to the extraction, read and checked: the JSON object in its text
(:func:`parse_answer`), each value against its declaration (:func:`check_value`), accepting the
usual spellings of a value and making nothing up."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from .postcall_spec import PostCallVariable

FieldStatus = Literal["ok", "missing", "invalid"]


@dataclass
class FieldResult:
    """One extracted value: ``ok`` (``value``), ``missing``, or ``invalid`` (``found``)."""

    status: FieldStatus
    value: Any = None
    found: Any = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.status == "ok":
            out["value"] = self.value
        if self.status == "invalid":
            out["found"] = self.found
        if self.reason:
            out["reason"] = self.reason
        return out


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def parse_answer(text: str) -> dict[str, Any] | None:
    """The JSON object in an answer: the whole text, a fenced block, or the first object in
    the prose around it. None when there is none."""
    text = _THINK.sub("", text).strip()
    candidates = [text, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _scalar(kind: str, value: Any) -> tuple[bool, Any]:
    """(valid, value) for one value of ``kind``; the usual spellings of a value are accepted
    ("5" for 5, 5.0 for 5, "true" for true), nothing is made up."""
    if kind == "string":
        if isinstance(value, str):
            return True, value.strip()
        return False, value
    if kind == "boolean":
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return True, value.strip().lower() == "true"
        return False, value
    if isinstance(value, bool):
        return False, value
    if kind == "integer":
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            return True, int(value.strip())
        return False, value
    if isinstance(value, int):
        return True, value
    if isinstance(value, float):
        return math.isfinite(value), value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
        return True, int(number) if number.is_integer() and "." not in value else number
    return False, value


_A = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


def check_value(spec: PostCallVariable, value: Any) -> FieldResult:
    """One value of the LLM's answer against its declaration."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return FieldResult("missing", reason="the transcript does not say")
    if spec.type == "enum":
        if isinstance(value, str):
            wanted = value.strip()
            for allowed in spec.values:
                if wanted == allowed or wanted.lower() == allowed.lower():
                    return FieldResult("ok", allowed)
            if spec.name == "outcome" and wanted.lower().replace("_", "-") in (
                "no-answer",
                "no answer",
            ):
                return FieldResult("ok", "no-answer")
        return FieldResult("invalid", found=value, reason=f"not one of {', '.join(spec.values)}")
    if spec.type == "list":
        if not isinstance(value, list):
            return FieldResult("invalid", found=value, reason=f"not a list of {spec.items}s")
        items = []
        for item in value:
            valid, coerced = _scalar(spec.items, item)
            if not valid:
                return FieldResult(
                    "invalid", found=value, reason=f"{json.dumps(item)} is not {_A[spec.items]}"
                )
            items.append(coerced)
        return FieldResult("ok", items)
    valid, coerced = _scalar(spec.type, value)
    if not valid:
        return FieldResult("invalid", found=value, reason=f"not {_A[spec.type]}")
    return FieldResult("ok", coerced)
