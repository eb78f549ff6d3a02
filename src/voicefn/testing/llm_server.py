"""A real local HTTP server that speaks the OpenAI Chat Completions wire format.

`ScriptedLLM` answers each ``POST /v1/chat/completions`` with the next scripted reply, either as
a Server-Sent-Events stream (``"stream": true``) or as one ``chat.completion`` object, so the
real ``openai`` SDK (or any HTTP client) runs unmodified against it::

    with ScriptedLLM() as llm:
        llm.push(text("Hello!"), Reply(tool_calls=[tool_call("check_order", {"order_id": "A1"})]))
        client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
        ...
        assert llm.requests[1]["messages"][-1]["role"] == "tool"

`RawReply` replays a recorded answer byte for byte (a provider's real SSE stream, with its own
quirks), so replay tests run the real client code against real provider output::

    llm.push(RawReply.from_chunks(Path("azure-text.chunks.txt").read_text().splitlines()))

Only the standard library is used; the server runs on daemon threads and listens on
127.0.0.1 with an ephemeral port.

Wire format (streaming): ``Content-Type: text/event-stream`` with HTTP/1.1 chunked transfer
encoding, one ``data: {chat.completion.chunk}\\n\\n`` event per chunk, written and flushed
one by one (``TCP_NODELAY``) so that delays are real. The first chunk's delta is
``{"role": "assistant", "content": ""}``; then text pieces; then, per tool call, a header chunk
(``index``, ``id``, ``type``, ``function.name``, empty ``arguments``) followed by argument
fragments (``index`` + ``function.arguments`` only); then a chunk with an empty delta and the
``finish_reason``; a usage chunk (``choices: []``) if the request asked for
``stream_options.include_usage``; then ``data: [DONE]\\n\\n``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import select
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from ._http import HANGUP_ERRORS, Disconnected, JSONHandler, LocalHTTPServer

__all__ = [
    "ErrorReply",
    "RawReply",
    "Reply",
    "ReplyFactory",
    "ScriptItem",
    "ScriptedLLM",
    "ToolCallSpec",
    "error_reply",
    "text",
    "tool_call",
]


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


class _Handler(JSONHandler["ScriptedLLM"]):
    server_version = "ScriptedLLM/1.0"

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.owner._connection_closed(self.connection)

    # -- plumbing -----------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        """Sleep, but notice (and raise `Disconnected`) if the client closes the connection."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                readable, _, _ = select.select([self.connection], [], [], remaining)
            except (OSError, ValueError) as exc:
                raise Disconnected from exc
            if not readable:
                return
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            except OSError as exc:
                raise Disconnected from exc
            if not peeked:
                raise Disconnected
            # The client sent bytes (unexpected mid-response); just sleep out the rest.
            time.sleep(max(0.0, deadline - time.monotonic()))
            return

    def _send_error_json(self, status: int, message: str, type_: str = "server_error") -> None:
        self.send_json(status, {"error": {"message": message, "type": type_, "code": None}})

    # -- routes -------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except HANGUP_ERRORS:
            self.close_connection = True

    def _get(self) -> None:
        self.read_body()
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/v1/models":
            model = {"id": "scripted", "object": "model", "created": 0, "owned_by": "voicefn"}
            self.send_json(200, {"object": "list", "data": [model]})
        elif path == "/v1/models/scripted":
            self.send_json(
                200, {"id": "scripted", "object": "model", "created": 0, "owned_by": "voicefn"}
            )
        else:
            self._send_error_json(404, f"ScriptedLLM: no route GET {path}", "invalid_request_error")

    def _post(self) -> None:
        arrived = time.perf_counter()
        raw = self.read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = urlsplit(self.path).path.rstrip("/")
        owner = self.owner
        if path != "/v1/chat/completions":
            self._send_error_json(
                404, f"ScriptedLLM: no route POST {path}", "invalid_request_error"
            )
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            message = "ScriptedLLM: request body is not a JSON object"
            owner._note_error(message)
            self._send_error_json(400, message, "invalid_request_error")
            return

        number, item = owner._take(body, arrived, headers)
        if item is None:
            message = f"ScriptedLLM: no scripted reply left for request #{number}"
            owner._note_error(message)
            self._send_error_json(500, message)
            return
        if not isinstance(item, Reply | ErrorReply | RawReply):
            try:
                item = item(body)
            except Exception as exc:
                message = f"ScriptedLLM: reply factory for request #{number} raised {exc!r}"
                owner._note_error(message)
                self._send_error_json(500, message)
                return
            if not isinstance(item, Reply | ErrorReply | RawReply):
                message = (
                    f"ScriptedLLM: reply factory for request #{number} returned "
                    f"{type(item).__name__}, expected Reply, ErrorReply or RawReply"
                )
                owner._note_error(message)
                self._send_error_json(500, message)
                return

        try:
            if isinstance(item, ErrorReply):
                self._wait(item.delay_before_s)
                self.send_json(item.status, item.body(), item.headers)
            elif isinstance(item, RawReply):
                self._raw(number, item)
            elif body.get("stream"):
                self._stream(number, body, item)
            else:
                self._wait(item.delay_before_s)
                self.send_json(200, owner._completion(number, body, item))
        except HANGUP_ERRORS:
            owner._note_disconnect(number)
            self.close_connection = True

    def _stream(self, number: int, body: dict[str, Any], reply: Reply) -> None:
        owner = self.owner
        self._wait(reply.delay_before_s)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_scripted_{number}")
        self.end_headers()

        for sent, (pause, data) in enumerate(owner._chunks(number, body, reply)):
            if reply.drop_after_chunks is not None and sent >= reply.drop_after_chunks:
                # Simulated network failure: the body never terminates.
                self.close_connection = True
                owner._note_disconnect(number)
                return
            self._wait(pause)
            event = b"data: " + data + b"\n\n"
            self.write(f"{len(event):x}\r\n".encode("ascii") + event + b"\r\n")
        self.write(b"0\r\n\r\n")

    def _raw(self, number: int, reply: RawReply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_scripted_{number}")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.drop_after_bytes is not None:
            part = reply.body[: reply.drop_after_bytes]
            if part:
                self.write(f"{len(part):x}\r\n".encode("ascii") + part + b"\r\n")
            self.close_connection = True  # the body never ends
            self.owner._note_disconnect(number)
            return
        for event in reply.events():
            self.write(f"{len(event):x}\r\n".encode("ascii") + event + b"\r\n")
        self.write(b"0\r\n\r\n")


def _split(s: str, size: int) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)]


class ScriptedLLM(LocalHTTPServer):
    """A threaded OpenAI-compatible HTTP server answering with scripted replies.

    Use as a (sync or async) context manager, or call `start` / `close`. Each
    ``/v1/chat/completions`` request consumes the next pushed item, in order; with none left
    the request gets HTTP 500 ``"ScriptedLLM: no scripted reply left for request #N"``.

    Note that the ``openai`` SDK retries 5xx/429 answers (``max_retries``, default 2), and each
    retry consumes another scripted item.
    """

    _handler_class = _Handler
    _error_if_running = True
    _not_running_message = "ScriptedLLM is not running (use `with ScriptedLLM() as llm`)"

    def __init__(
        self,
        replies: Iterable[ScriptItem] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self._queue: deque[ScriptItem] = deque(replies)
        self._requests: list[dict[str, Any]] = []
        self._request_headers: list[dict[str, str]] = []
        self._request_times: list[float] = []
        self._connections_opened = 0
        self._errors: list[str] = []
        self._disconnected: list[int] = []
        self._ids = itertools.count(1)
        self._connections: set[socket.socket] = set()

    # -- public API ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._bound_port()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` — pass as ``base_url`` to ``openai.OpenAI``."""
        return f"http://{self._host}:{self.port}/v1"

    def push(self, *items: ScriptItem) -> None:
        """Queue replies (or ``(request_json) -> Reply`` factories), one per request."""
        for item in items:
            if not (isinstance(item, Reply | ErrorReply | RawReply) or callable(item)):
                raise TypeError(f"cannot script {type(item).__name__}; push a Reply")
        with self._lock:
            self._queue.extend(items)

    @property
    def remaining(self) -> int:
        """How many scripted items have not been consumed yet."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the chat-completion requests received so far, in arrival order."""
        return self._snapshot(self._requests)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """The headers of each entry of `requests` (names in lower case)."""
        return self._snapshot(self._request_headers)

    @property
    def connections_opened(self) -> int:
        """How many connections clients opened so far (kept-alive ones count once)."""
        with self._lock:
            return self._connections_opened

    @property
    def request_times(self) -> list[float]:
        """``time.perf_counter()`` at the arrival of each entry of `requests`."""
        return self._snapshot(self._request_times)

    @property
    def errors(self) -> list[str]:
        """Problems the server answered with an error (empty queue, bad body, factory raised)."""
        return self._snapshot(self._errors)

    @property
    def disconnected(self) -> list[int]:
        """1-based numbers of requests whose answer was cut short (client left or dropped)."""
        return self._snapshot(self._disconnected)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` requests arrived; raise `TimeoutError` otherwise."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) >= count, timeout=timeout):
                raise TimeoutError(
                    f"ScriptedLLM: expected {count} requests, got {len(self._requests)}"
                )
            return list(self._requests)

    # -- server-side helpers (called from handler threads) ------------------------------

    def _server_closed(self) -> None:
        """Drop open connections and wait (briefly) for their handler threads to finish."""
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._lock.wait_for(lambda: not self._connections, timeout=2.0)

    def _handler_crashed(self, exc: BaseException) -> None:
        self._note_error(f"ScriptedLLM: handler crashed: {exc!r}")
        traceback.print_exception(exc, file=sys.stderr)

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)
            self._connections_opened += 1

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)
            self._lock.notify_all()

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    def _note_disconnect(self, number: int) -> None:
        with self._lock:
            if number not in self._disconnected:
                self._disconnected.append(number)

    def _take(
        self, body: dict[str, Any], arrived: float, headers: dict[str, str]
    ) -> tuple[int, ScriptItem | None]:
        with self._lock:
            self._requests.append(body)
            self._request_headers.append(headers)
            self._request_times.append(arrived)
            self._lock.notify_all()
            number = len(self._requests)
            item = self._queue.popleft() if self._queue else None
        return number, item

    def _resolve_ids(self, reply: Reply) -> list[tuple[str, ToolCallSpec]]:
        with self._lock:
            return [(tc.id or f"call_{next(self._ids)}", tc) for tc in reply.tool_calls]

    @staticmethod
    def _usage(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        if reply.usage is not None:
            return dict(reply.usage)
        prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
        out = len(reply.text or "") + sum(
            len(tc.name) + len(tc.arguments_json) for tc in reply.tool_calls
        )
        completion = max(1, out // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, number: int, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
        calls = self._resolve_ids(reply)
        if calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tc.name, "arguments": tc.arguments_json},
                }
                for call_id, tc in calls
            ]
        return {
            "id": f"chatcmpl-scripted-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or "scripted"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.resolved_finish_reason,
                }
            ],
            "usage": self._usage(body, reply),
        }

    def _chunks(
        self, number: int, body: dict[str, Any], reply: Reply
    ) -> Iterable[tuple[float, bytes]]:
        """``(pause_before, json_or_DONE)`` pairs for a streamed reply."""
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        base: dict[str, Any] = {
            "id": f"chatcmpl-scripted-{number}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": str(body.get("model") or "scripted"),
            "system_fingerprint": None,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            obj = dict(base)
            obj["choices"] = [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            ]
            if include_usage:
                obj["usage"] = None
            return json.dumps(obj, ensure_ascii=False).encode("utf-8")

        yield 0.0, chunk({"role": "assistant", "content": ""})
        for piece in _split(reply.text or "", reply.chunk_size):
            yield reply.delay_s, chunk({"content": piece})
        hold = 0.0
        for index, (call_id, tc) in enumerate(self._resolve_ids(reply)):
            header = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": tc.name, "arguments": ""},
            }
            yield reply.delay_s + hold, chunk({"tool_calls": [header]})
            for fragment in _split(tc.arguments_json, reply.chunk_size):
                yield (
                    reply.delay_s,
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                )
            hold = reply.hold_after_tool_args_s
        yield reply.delay_s + hold, chunk({}, reply.resolved_finish_reason)
        if include_usage:
            obj = dict(base)
            obj["choices"] = []
            obj["usage"] = self._usage(body, reply)
            yield 0.0, json.dumps(obj, ensure_ascii=False).encode("utf-8")
        yield 0.0, b"[DONE]"
