"""A JSON response rendered by orjson (for errors and the execute path, which skip FastAPI's
response models), falling back to the standard library for what orjson refuses: integers beyond
64 bits and lone surrogates, both of which JSON text can hold."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import Response


def dumps(content: Any) -> bytes:
    try:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(content, ensure_ascii=True, default=str, allow_nan=False).encode()


class Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
