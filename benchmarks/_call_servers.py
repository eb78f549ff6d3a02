"""The fake LLM and function API of the call benchmarks, in a process of their own.

    python benchmarks/_call_servers.py [--hold-ms 25] [--gap-ms 2] [--fn-delay-ms 40] [--uvloop]

Two HTTP/1.1 keep-alive servers on 127.0.0.1 (ephemeral ports, printed as ``PORTS <llm> <fn>``),
written on ``asyncio.Protocol`` so that they stay fast with a thousand calls:

* the LLM, ``POST /v1/chat/completions``: when the request's last message is the caller's, a
  streamed tool call ``check_order({"order_id": "ORD-<key>"})``: the role chunk, the call's header,
  the arguments in 6-character fragments ``--gap-ms`` apart, then ``--hold-ms`` of silence, then the
  finish chunk and ``[DONE]``; when it is a tool result, a streamed three-chunk answer;
* the function, any ``POST``: answers ``{"order_id", "status", ...}`` after ``--fn-delay-ms``.

``<key>`` is read from the last message (``ORD-<key>``, letters and digits) and from the function's
body, so every turn is timestamped with ``time.monotonic_ns()`` (CLOCK_MONOTONIC, system-wide on
Linux, as the clients' ``time.perf_counter``): ``llm1_arrived``, ``args_written`` (the chunk that
completes the arguments is on the wire), ``stream_end_written``, ``fn_arrived``, ``fn_responded``,
``llm2_arrived``. ``GET /_times?prefix=<p>`` on either port answers the timestamps of the keys
starting with ``p`` (as JSON) and forgets them.

Standard library only (orjson and uvloop when present). The servers stop when stdin reaches EOF
(the parent closed it or died) or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - the benchmarks run in the project's venv
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    loads = json.loads

KEY = re.compile(rb"ORD-([0-9a-z]+)")
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_DONE = b"data: [DONE]\n\n"
_END = b"%x\r\n%s\r\n0\r\n\r\n" % (len(_DONE), _DONE)
ANSWER = ("Your order ", "has shipped ", "and arrives in 2 days.")
MAX_HEAD = 64 * 1024


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    data = b"data: " + dumps(body) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


_ROLE = chunk({"role": "assistant", "content": ""})
_TEXT = _SSE_HEAD + _ROLE + b"".join(chunk({"content": t}) for t in ANSWER)
_TEXT_END = chunk({}, "stop") + _END
_TOOL_END = chunk({}, "tool_calls") + _END


def json_response(data: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(data) + data


class Times:
    """``key -> {what: monotonic_ns}`` for every turn."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, int]] = {}

    def note(self, key: str, what: str) -> None:
        entry = self.by_key.get(key)
        if entry is None:
            entry = self.by_key[key] = {}
        entry[what] = time.monotonic_ns()

    def take(self, prefix: str) -> bytes:
        keys = [k for k in self.by_key if k.startswith(prefix)]
        return dumps({k: self.by_key.pop(k) for k in keys})


class HttpServer(asyncio.Protocol):
    """Reads requests (``Content-Length`` bodies, keep-alive) one at a time; ``handle`` answers."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.task: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD and self.transport is not None:
                self.transport.close()
            return
        head = bytes(buf[:end])
        length = 0
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = lower.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else None])
        if len(buf) < end + 4 + length:
            return
        body = bytes(buf[end + 4 : end + 4 + length])
        del buf[: end + 4 + length]
        self.busy = True
        line = head.split(b"\r\n", 1)[0]
        result = self.app.handle(self, line, body)
        if result is None:
            self.done()
        else:
            self.task = asyncio.ensure_future(result)  # kept: a running answer is referenced

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def done(self) -> None:
        self.busy = False
        if self.buf:
            self._next()


class App:
    def __init__(self, args: argparse.Namespace) -> None:
        self.hold_s = args.hold_ms / 1000
        self.gap_s = args.gap_ms / 1000
        self.fn_delay_s = args.fn_delay_ms / 1000
        self.times = Times()

    def handle(self, conn: HttpServer, line: bytes, body: bytes) -> Any:
        """Answer now (return None) or return a coroutine that answers and calls ``done``."""
        if line.startswith(b"GET /_times"):
            query = parse_qs(urlsplit(line.split(b" ")[1].decode()).query)
            conn.write(json_response(self.times.take(query.get("prefix", [""])[0])))
            return None
        return self.respond(conn, line, body)

    async def respond(self, conn: HttpServer, line: bytes, body: bytes) -> None:
        try:
            if b"/chat/completions" in line:
                await self.llm(conn, body)
            else:
                await self.function(conn, body)
        finally:
            conn.done()

    async def llm(self, conn: HttpServer, body: bytes) -> None:
        last = loads(body)["messages"][-1]
        content = last.get("content") or ""
        match = KEY.search(content.encode())
        key = match.group(1).decode() if match else "?"
        if last["role"] == "tool":  # the follow-up request, with the function's result
            self.times.note(key, "llm2_arrived")
            conn.write(_TEXT)
            conn.write(_TEXT_END)
            return
        self.times.note(key, "llm1_arrived")
        args = f'{{"order_id":"ORD-{key}"}}'
        header = {
            "index": 0,
            "id": f"call_{key}",
            "type": "function",
            "function": {"name": "check_order", "arguments": ""},
        }
        conn.write(_SSE_HEAD + _ROLE + chunk({"tool_calls": [header]}))
        for at in range(0, len(args), 6):
            if self.gap_s:
                await asyncio.sleep(self.gap_s)
            piece = {"index": 0, "function": {"arguments": args[at : at + 6]}}
            conn.write(chunk({"tool_calls": [piece]}))
        self.times.note(key, "args_written")
        if self.hold_s:
            await asyncio.sleep(self.hold_s)
        conn.write(_TOOL_END)
        self.times.note(key, "stream_end_written")

    async def function(self, conn: HttpServer, body: bytes) -> None:
        order_id = str(loads(body).get("order_id", ""))
        key = order_id.removeprefix("ORD-")
        self.times.note(key, "fn_arrived")
        if self.fn_delay_s:
            await asyncio.sleep(self.fn_delay_s)
        data = dumps({"order_id": order_id, "status": "shipped", "eta_days": 2, "carrier": "UPS"})
        conn.write(json_response(data))
        self.times.note(key, "fn_responded")


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    app = App(args)
    llm = await loop.create_server(lambda: HttpServer(app), "127.0.0.1", 0, backlog=4096)
    fn = await loop.create_server(lambda: HttpServer(app), "127.0.0.1", 0, backlog=4096)
    stop = asyncio.Event()

    def on_stdin() -> None:  # the parent closed our stdin (or died): stop
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            stop.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    llm_port = llm.sockets[0].getsockname()[1]
    fn_port = fn.sockets[0].getsockname()[1]
    print(f"PORTS {llm_port} {fn_port}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    llm.close()
    fn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hold-ms", type=float, default=25.0)
    parser.add_argument("--gap-ms", type=float, default=2.0)
    parser.add_argument("--fn-delay-ms", type=float, default=40.0)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--uvloop", action="store_true", help="serve on uvloop if installed")
    args = parser.parse_args()
    if args.uvloop:
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve(args))
        else:
            uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
