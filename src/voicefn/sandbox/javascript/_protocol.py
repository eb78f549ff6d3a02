"""The wire between the supervisor and a tenant's Deno host: frames and untrusted input.

Frames are a 4-byte big-endian length and a JSON object, over the Unix socket. Everything the
Deno process sends is untrusted: a frame over the size cap, bytes that are not JSON, a
non-object, or an HTTP request of the wrong shape is a :class:`ProtocolError` (the caller kills
the process). What the caller's ``egress`` returns is cleaned before it goes back in.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import urllib.parse
from typing import Any

MAX_URL = 8192
MAX_HEADERS = 100
MAX_HEADER_CHARS = 8192
MAX_REQUEST_BODY_B64 = 6 << 20
MAX_RESPONSE_BODY_B64 = 11 << 20  # ~8 MiB decoded

_METHOD = re.compile(r"^[A-Z]{1,16}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DROP_RESPONSE_HEADERS = frozenset(
    {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}
)


class ProtocolError(Exception):
    """The Deno process sent something it must not (``str(exc)`` is safe to show)."""


class Eof(Exception):
    """The Deno process closed the socket."""


def clean(value: Any, limit: int) -> str:
    """A bounded string from ``value``, without control characters but tabs and line breaks."""
    text = value if isinstance(value, str) else repr(value)
    text = _CONTROL.sub("", text)
    return text if len(text) <= limit else text[:limit] + "…"


def safe_url(url: str) -> str:
    """The URL for ``Outcome.http``: without user:password, bounded."""
    with contextlib.suppress(ValueError):
        parts = urllib.parse.urlsplit(url)
        if "@" in parts.netloc:
            url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return clean(url, 2000)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# ------------------------------------------------------------------------------- frames


def encode(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return len(body).to_bytes(4, "big") + body


async def read_frame(reader: asyncio.StreamReader, max_len: int) -> dict[str, Any]:
    """The next frame; :class:`Eof` when the socket closed, :class:`ProtocolError` if bad."""
    try:
        head = await reader.readexactly(4)
        length = int.from_bytes(head, "big")
        if length > max_len:
            raise ProtocolError(f"a frame of {length} bytes")
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise Eof from exc
    try:
        msg = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("a frame that is not JSON") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("a frame that is not an object")
    return msg


# ------------------------------------------------------------------------------- HTTP


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def validate_request(msg: dict[str, Any]) -> dict[str, Any] | str:
    """A ``fetch`` frame as the request for ``egress``, or what is wrong with it."""
    method, url, headers, body = (
        msg.get("method"),
        msg.get("url"),
        msg.get("headers"),
        msg.get("body"),
    )
    if not isinstance(method, str) or not _METHOD.match(method):
        return "a bad HTTP method"
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        return "a bad URL"
    if not isinstance(headers, list) or len(headers) > MAX_HEADERS:
        return "bad HTTP headers"
    clean_headers: list[list[str]] = []
    for pair in headers:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(x, str) and len(x) <= MAX_HEADER_CHARS for x in pair)
        ):
            return "bad HTTP headers"
        clean_headers.append([pair[0], pair[1]])
    if not isinstance(body, str) or len(body) > MAX_REQUEST_BODY_B64 or not _is_base64(body):
        return "a bad HTTP body"
    return {"method": method, "url": url, "headers": clean_headers, "body": body}


def validate_response(response: Any) -> dict[str, Any]:
    """What ``egress`` returned, bounded and cleaned for the Worker (or ``{"error": …}``)."""
    if not isinstance(response, dict):
        return {"error": "the egress callback returned no response"}
    if "error" in response:
        return {"error": clean(response["error"], 500)}
    status, headers, body = (
        response.get("status"),
        response.get("headers", []),
        response.get("body", ""),
    )
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return {"error": "the egress callback returned a bad status"}
    if not isinstance(body, str) or len(body) > MAX_RESPONSE_BODY_B64:
        return {"error": "the response body is too large or malformed"}
    if not _is_base64(body):
        return {"error": "the response body is malformed"}
    clean_headers: list[list[str]] = []
    for pair in list(headers or [])[:MAX_HEADERS]:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            key, value = clean(str(pair[0]), 256), clean(str(pair[1]), MAX_HEADER_CHARS)
            if key and key.lower() not in _DROP_RESPONSE_HEADERS:
                clean_headers.append([key, value])
    return {"status": status, "headers": clean_headers, "body": body}
