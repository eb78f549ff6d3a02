"""Identifiers, API keys and pagination cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import secrets
import uuid
from typing import Any

from .protocol import BadCursor

KEY_PREFIX = "vfn_"


def new_id(kind: str) -> str:
    """``agent_3f9c...``: a kind and 64 random bits (16 hex digits)."""
    return f"{kind}_{secrets.token_hex(8)}"


def ordered_id(kind: str, at_us: int) -> str:
    """An id that sorts by time: the microsecond clock, then 40 random bits.

    For records made on the hot path (executions): unique, not secret, so the fast generator
    (reseeded in each forked process) rather than the system's."""
    return f"{kind}_{at_us:014x}{random.getrandbits(40):010x}"


def quick_uuid() -> str:
    """A version-4 UUID for ids that are not secrets (request and call execution ids)."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def new_key() -> str:
    """An API key: ``vfn_`` and 240 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(30)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The values of a cursor made by :func:`encode_cursor`, checked against ``types``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadCursor("this cursor was not made by this API") from None
    if (
        not isinstance(values, list)
        or len(values) != len(types)
        or not all(type(v) is t for v, t in zip(values, types, strict=True))
    ):
        raise BadCursor("this cursor was not made by this API")
    return values
