"""Real HTTP servers on 127.0.0.1 for tests: they record what arrives and answer by path.

Routes (any method):
  /echo            200, JSON: method, path, query, headers, body (text), json (parsed or null)
  /status/<n>      <n>, JSON {"message": "status <n>"}
  /slow?ms=<n>     sleeps n ms, then 200 JSON
  /huge?bytes=<n>  200, JSON string of n bytes (Content-Length set unless &chunked=1)
  /text            200 text/plain
  /badjson         200 application/json with a body that is not JSON
  /empty           204
  /set-cookie      200 with a Set-Cookie header
  /profile         200, a pre-call result: variables and a system prompt
  /redirect?to=<url>&code=<n>   redirect
  /reset           closes the connection without an answer (RST)
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    arrived_at: float = field(default_factory=time.perf_counter)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class LocalServer:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.received


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        rec = Received(self.command, parts.path, query, dict(self.headers.items()), body)
        self.server.state.received.append(rec)
        path = parts.path
        q = {k: v[-1] for k, v in query.items()}
        if path == "/echo":
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            payload = {
                "method": self.command,
                "path": path,
                "query": query,
                "headers": rec.headers,
                "body": body.decode("utf-8", "replace"),
                "json": parsed,
            }
            self._reply(200, json.dumps(payload, ensure_ascii=False).encode())
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._reply(code, json.dumps({"message": f"status {code}"}).encode())
        elif path == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000)
            self._reply(200, b'{"slow": true}')
        elif path == "/huge":
            n = int(q.get("bytes", "100000"))
            data = json.dumps("x" * (n - 2)).encode()
            if q.get("chunked") == "1":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(data), 65536):
                    chunk = data[i : i + 65536]
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self._reply(200, data)
        elif path == "/text":
            self._reply(200, "plain words, naïve café".encode(), "text/plain; charset=utf-8")
        elif path == "/badjson":
            self._reply(200, b'{"unterminated": ', "application/json")
        elif path == "/profile":  # a pre-call lookup: who is calling?
            payload = {
                "variables": {"customer_name": "Bruce", "tier": "gold"},
                "system_prompt": "VIP {customer_name} ({tier}), caller {from_number}.",
            }
            self._reply(200, json.dumps(payload).encode())
        elif path == "/set-cookie":
            self._reply(200, b"{}", extra={"Set-Cookie": "session=tenant-a-secret; Path=/"})
        elif path == "/empty":
            self.send_response(204)
            self.end_headers()
        elif path == "/redirect":
            self._reply(int(q.get("code", "302")), b"", extra={"Location": q["to"]})
        elif path == "/reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        else:
            self._reply(404, b'{"message": "no such route"}')

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hanging up is normal here
            super().handle_error(request, client_address)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn = super().get_request()
        self.state.connections += 1
        return conn


@contextmanager
def running_server(host: str = "127.0.0.1") -> Iterator[LocalServer]:
    server = _Server((host, 0), _Handler)
    server.state = LocalServer(host, server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------- raw responses


@dataclass
class RawRequest:
    """One request as a Content-Length-framing server saw it (Transfer-Encoding ignored)."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    connection: int  # which TCP connection it arrived on (1, 2, ...)


@dataclass
class RawServer:
    host: str
    port: int
    requests: list[RawRequest] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class _RawHandler(socketserver.StreamRequestHandler):
    server: _RawTCPServer

    def handle(self) -> None:
        state = self.server.state
        with self.server.lock:
            self.server.count += 1
            connection = self.server.count
        while True:
            line = self.rfile.readline(65536)
            if not line.strip():
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (header := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
                name, _, value = header.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = self.rfile.read(int(headers.get("content-length") or 0))
            request = RawRequest(method, target, headers, body, connection)
            state.requests.append(request)
            response = self.server.respond(request)
            try:
                self.wfile.write(response)
                self.wfile.flush()
            except OSError:
                return
            if b"\r\nConnection: close\r\n" in response.split(b"\r\n\r\n", 1)[0] + b"\r\n":
                return


class _RawTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: RawServer
    respond: Callable[[RawRequest], bytes]
    count = 0
    lock = threading.Lock()


def raw_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None, length: bool = True
) -> bytes:
    """An HTTP/1.1 response in bytes, exactly as given (``length=False``: no Content-Length,
    the connection closes after it)."""
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    else:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@contextmanager
def running_raw_server(respond: Callable[[RawRequest], bytes]) -> Iterator[RawServer]:
    """A keep-alive server that frames requests by Content-Length only (as a vulnerable
    back end would) and answers each with ``respond(request)``."""
    server = _RawTCPServer(("127.0.0.1", 0), _RawHandler)
    server.state = RawServer("127.0.0.1", server.server_address[1])
    server.respond = respond
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()
