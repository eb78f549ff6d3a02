"""What :class:`~voicefn.testing.ScriptedLLM` answers with: a scripted assistant message
(:class:`Reply`, :func:`text`, :func:`tool_call`), an HTTP error (:func:`error_reply`), or a
recorded stream replayed byte for byte (:class:`RawReply`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call the scripted assistant makes.

    ``arguments`` is either a mapping (sent as compact JSON) or a raw string sent verbatim, which
    lets a test deliver malformed JSON. ``id=None`` gets ``call_<n>`` when served, numbered per
    server from 1.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The exact argument string that goes on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), ensure_ascii=False, separators=(",", ":"))


def tool_call(name: str, arguments: Mapping[str, Any] | str, id: str | None = None) -> ToolCallSpec:
    """Shorthand for `ToolCallSpec`."""
    return ToolCallSpec(name=name, arguments=arguments, id=id)


@dataclass
class Reply:
    """One scripted assistant message.

    Streaming timing: ``delay_before_s`` is slept before the response headers (time to first
    byte); ``delay_s`` before every chunk after the first; ``hold_after_tool_args_s`` is added
    after the last argument fragment of each tool call, i.e. before the next tool call's header
    or the finish chunk. Non-streaming requests only honour ``delay_before_s``.

    ``drop_after_chunks=n`` simulates a network failure: the server closes the connection after
    ``n`` data chunks without ending the body (streaming only).
    """

    text: str | None = None
    tool_calls: Sequence[ToolCallSpec] = field(default_factory=list)
    chunk_size: int = 8
    delay_s: float = 0.0
    delay_before_s: float = 0.0
    hold_after_tool_args_s: float = 0.0
    finish_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    drop_after_chunks: int | None = None

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        for name in ("delay_s", "delay_before_s", "hold_after_tool_args_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.drop_after_chunks is not None and self.drop_after_chunks < 0:
            raise ValueError("drop_after_chunks must be >= 0")
        self.tool_calls = list(self.tool_calls)

    @property
    def resolved_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


def text(
    s: str,
    *,
    chunk_size: int = 8,
    delay_s: float = 0.0,
    delay_before_s: float = 0.0,
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    drop_after_chunks: int | None = None,
) -> Reply:
    """A reply that is just assistant text."""
    return Reply(
        text=s,
        chunk_size=chunk_size,
        delay_s=delay_s,
        delay_before_s=delay_before_s,
        finish_reason=finish_reason,
        usage=usage,
        drop_after_chunks=drop_after_chunks,
    )


@dataclass
class ErrorReply:
    """An HTTP error with OpenAI's error body: ``{"error": {"message", "type", "code"}}``."""

    status: int
    message: str
    type: str = "server_error"
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_before_s: float = 0.0

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


def error_reply(
    status: int,
    message: str,
    *,
    type: str = "server_error",
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    delay_before_s: float = 0.0,
) -> ErrorReply:
    """An HTTP error reply (e.g. ``error_reply(500, "overloaded")``, ``error_reply(429, ...)``)."""
    return ErrorReply(
        status=status,
        message=message,
        type=type,
        code=code,
        headers=dict(headers or {}),
        delay_before_s=delay_before_s,
    )


@dataclass(frozen=True)
class RawReply:
    """A recorded HTTP answer replayed byte for byte: a provider's real SSE stream, say.

    The body is written as it is, with HTTP/1.1 chunked transfer encoding, one Server-Sent
    Event (up to and including its blank line) per write, so the client parses the provider's
    own framing, field order and quirks. Nothing in the body is checked or rewritten.

    ``drop_after_bytes=n`` simulates a connection lost mid-answer: only the body's first ``n``
    bytes are sent (cut anywhere, mid-line included), then the connection is closed without
    ending the body.
    """

    body: bytes
    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)
    drop_after_bytes: int | None = None

    def events(self) -> list[bytes]:
        """The body cut after each blank line (``\\n\\n`` or ``\\r\\n\\r\\n``)."""
        pieces: list[bytes] = []
        start = 0
        body = self.body
        while start < len(body):
            ends = [i for i in (body.find(b"\n\n", start), body.find(b"\r\n\r\n", start)) if i >= 0]
            if not ends:
                pieces.append(body[start:])
                break
            end = min(ends)
            end += 4 if body.startswith(b"\r\n\r\n", end) else 2
            pieces.append(body[start:end])
            start = end
        return pieces

    @classmethod
    def sse(cls, text: str | bytes) -> RawReply:
        """A recorded stream as it was on the wire (``data: ...`` lines and blank lines)."""
        return cls(text.encode("utf-8") if isinstance(text, str) else text)

    @classmethod
    def from_chunks(cls, lines: Iterable[str], *, done: bool = True) -> RawReply:
        """A stream from recorded chunk objects, one JSON text per line (the ``*.chunks.txt``
        fixture format): each non-empty line becomes one ``data:`` event, verbatim."""
        events = [f"data: {line.strip()}\n\n" for line in lines if line.strip()]
        if done:
            events.append("data: [DONE]\n\n")
        return cls("".join(events).encode("utf-8"))


ReplyFactory: TypeAlias = Callable[[dict[str, Any]], "Reply | ErrorReply | RawReply"]
"""Called on a server thread with the request's JSON body; returns the reply to send."""

ScriptItem: TypeAlias = Reply | ErrorReply | RawReply | ReplyFactory
