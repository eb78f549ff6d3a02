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

The replies live in :mod:`.llm_server_replies`, the request handler in :mod:`.llm_server_handler`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Iterable
from typing import Any

from ._http import LocalHTTPServer
from .llm_server_handler import ChatHandler
from .llm_server_replies import (
    ErrorReply,
    RawReply,
    Reply,
    ReplyFactory,
    ScriptItem,
    ToolCallSpec,
    error_reply,
    text,
    tool_call,
)

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

    _handler_class = ChatHandler
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
