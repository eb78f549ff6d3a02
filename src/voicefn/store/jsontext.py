"""JSON for the database: what any backend stores, whatever JSON the caller or an API sent.

JSON text may carry what PostgreSQL refuses (NUL characters, lone surrogates, NaN and
infinities); Python's ``json`` and the engine pass them through. :func:`dumps` is the engines'
JSON serializer: orjson (fast; NaN and infinities become null), with NUL characters replaced by
U+FFFD and a careful fallback for what orjson refuses (integers beyond 64 bits, lone
surrogates).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

_NUL_ESCAPE = re.compile(r"(\\+)u0000")


def _no_nul(match: re.Match[str]) -> str:
    slashes = match.group(1)
    if len(slashes) % 2 == 0:  # an escaped backslash followed by the text "u0000"
        return match.group(0)
    return slashes[:-1] + "\\ufffd"


def dumps(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = json.dumps(clean(value), ensure_ascii=False, allow_nan=False)
    if "u0000" in text:
        text = _NUL_ESCAPE.sub(_no_nul, text)
    return text


def text(value: str | None) -> str | None:
    """A string any database stores: NUL and lone surrogates replaced."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def clean(value: Any) -> Any:
    """A structure any database stores: strings as :func:`text`, no NaN or infinity."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {text(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
