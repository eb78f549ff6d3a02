"""The wire between the supervisor and a tenant's Deno host: frames over the Unix socket.

Frames are a 4-byte big-endian length and a JSON object (:func:`~..common.encode_frame`).
Everything the Deno process sends is untrusted: a frame over the size cap, bytes that are not
strict UTF-8 JSON, or a non-object is a :class:`ProtocolError` (the caller kills the process).
HTTP requests and what ``egress`` returns are checked in :mod:`..common`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..common import ProtocolError, clean_text, decode_json, encode_frame, ms, safe_url

__all__ = ["Eof", "ProtocolError", "clean_text", "encode_frame", "ms", "read_frame", "safe_url"]


class Eof(Exception):
    """The Deno process closed the socket."""


async def read_frame(
    reader: asyncio.StreamReader, max_len: int | Callable[[], int]
) -> dict[str, Any]:
    """The next frame; :class:`Eof` when the socket closed, :class:`ProtocolError` if bad.
    ``max_len`` may be a function: it is asked once the frame's header has arrived (what is
    allowed may have grown while the reader waited)."""
    try:
        head = await reader.readexactly(4)
        length = int.from_bytes(head, "big")
        if length > (max_len if isinstance(max_len, int) else max_len()):
            raise ProtocolError(f"a frame of {length} bytes")
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise Eof from exc
    msg = decode_json(body)
    if not isinstance(msg, dict):
        raise ProtocolError("a frame that is not an object")
    return msg
