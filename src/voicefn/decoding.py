"""Bounded, incremental decoding of HTTP response bodies (``Content-Encoding``).

A customer-controlled server can answer with a decompression bomb: 1.8 KB of ``gzip, gzip``
that expands to gigabytes. The engine therefore never lets the HTTP client decode; it reads the
raw bytes and feeds them here. Every stage of a stacked encoding is decoded with
``zlib``'s ``max_length``, so no single call produces more than the remaining budget, and the
whole body (raw and decoded) stops at ``limit`` bytes with :class:`BodyTooLarge`. The cost of a
call is bounded by the budget, so the event loop is never held for long.

Supported encodings: ``identity``, ``gzip`` (``x-gzip``) and ``deflate`` (zlib-wrapped or raw,
as servers send both). The engine asks for exactly those (:data:`ACCEPT_ENCODING`); anything
else is :class:`UnsupportedEncoding`.
"""

from __future__ import annotations

import zlib

__all__ = [
    "ACCEPT_ENCODING",
    "MAX_ENCODINGS",
    "BodyTooLarge",
    "BoundedDecoder",
    "DecodeError",
    "UnsupportedEncoding",
]

#: The ``Accept-Encoding`` the engine sends on every request it makes.
ACCEPT_ENCODING = "gzip, deflate"
#: More stacked encodings than this is refused: no real server needs it.
MAX_ENCODINGS = 3


class DecodeError(Exception):
    """The body cannot be decoded as its ``Content-Encoding`` says (``str`` says why)."""


class UnsupportedEncoding(DecodeError):
    """The response uses an encoding the engine did not ask for and does not decode."""


class BodyTooLarge(Exception):
    """The body (raw or decoded) passed the byte budget; ``limit`` is that budget."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than the {limit} bytes allowed")
        self.limit = limit


class _Zlib:
    """One zlib stage; ``deflate`` tries the zlib wrapper first and falls back to raw."""

    def __init__(self, wbits: int, *, raw_fallback: bool = False) -> None:
        self._obj = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback
        self._seen_output = False
        self._pending = b""  # input not yet consumed because the output budget was reached

    def decode(self, data: bytes, budget: int) -> bytes:
        """At most ``budget + 1`` bytes of output (one more tells the caller it is over)."""
        data = self._pending + data if self._pending else data
        try:
            out = self._obj.decompress(data, budget + 1)
        except zlib.error as exc:
            if self._raw_fallback and not self._seen_output:
                self._raw_fallback = False
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data, budget)
            raise DecodeError(f"the body is not valid compressed data ({exc})") from None
        self._raw_fallback = self._raw_fallback and not out
        self._seen_output = self._seen_output or bool(out)
        self._pending = self._obj.unconsumed_tail
        return out

    def flush(self, budget: int) -> bytes:
        out = b""
        while self._pending and len(out) <= budget:
            out += self.decode(b"", budget - len(out))
        if len(out) <= budget:
            out += self._obj.flush(budget + 1 - len(out))
        return out


def _stage(name: str) -> _Zlib | None:
    if name in ("gzip", "x-gzip"):
        return _Zlib(zlib.MAX_WBITS | 16)
    if name == "deflate":
        return _Zlib(zlib.MAX_WBITS, raw_fallback=True)
    if name in ("identity", ""):
        return None
    raise UnsupportedEncoding(
        f"the response uses Content-Encoding {name!r}, which the engine did not ask for "
        f"(it accepts {ACCEPT_ENCODING})"
    )


class BoundedDecoder:
    """Feed raw body chunks; get decoded bytes; :class:`BodyTooLarge` past ``limit``.

    ``content_encoding`` is the header as sent (``"gzip, gzip"``): encodings are listed in the
    order they were applied, so they are undone last-first.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
        if len(names) > MAX_ENCODINGS:
            raise UnsupportedEncoding(
                f"the response stacks {len(names)} content encodings; at most {MAX_ENCODINGS} "
                "are decoded"
            )
        self.limit = limit
        self._stages = [s for s in (_stage(n) for n in reversed(names)) if s is not None]
        self.raw_bytes = 0
        self.decoded_bytes = 0

    def feed(self, raw: bytes) -> bytes:
        self.raw_bytes += len(raw)
        if self.raw_bytes > self.limit:
            raise BodyTooLarge(self.limit)
        return self._count(self._through(raw, final=False))

    def finish(self) -> bytes:
        """The rest of the output once the raw body has ended."""
        return self._count(self._through(b"", final=True))

    def _through(self, data: bytes, *, final: bool) -> bytes:
        for stage in self._stages:
            budget = self.limit - self.decoded_bytes
            out = stage.decode(data, budget) if data else b""
            if final and len(out) <= budget:
                out += stage.flush(budget - len(out))
            if len(out) > budget:  # zlib stopped one byte past the budget: too large
                raise BodyTooLarge(self.limit)
            data = out
        return data

    def _count(self, out: bytes) -> bytes:
        self.decoded_bytes += len(out)
        if self.decoded_bytes > self.limit:
            raise BodyTooLarge(self.limit)
        return out
