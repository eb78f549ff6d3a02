"""A real webhook receiver on 127.0.0.1 (a port the kernel picks) for the delivery tests.

It answers each path from a script (a list of answers used in order, then 200), can be slow and
answer 503 now and then, and deduplicates on ``Idempotency-Key`` like a careful receiver: a key
already processed is acknowledged without processing it again. ``processed`` maps each key to how
many times it was processed (must be 1) and ``bodies`` the bodies processed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Arrival:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Receiver:
    url: str
    arrivals: list[Arrival] = field(default_factory=list)
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    #: Idempotency-Key -> times processed (a deduplicating receiver: never more than 1)
    processed: dict[str, int] = field(default_factory=dict)
    bodies: list[Any] = field(default_factory=list)
    duplicates: int = 0
    #: requests being answered right now
    inflight: int = 0
    #: the flaky mode: each request waits ``slow_s`` and answers 503 with probability ``flaky``
    slow_s: float = 0.0
    flaky: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, path: str, *answers: Answer) -> str:
        self.scripts[path] = list(answers)
        return self.url + path

    def at(self, path: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        r = self.server.receiver
        with r.lock:
            r.inflight += 1
        try:
            self._answer(r)
        finally:
            with r.lock:
                r.inflight -= 1

    def _answer(self, r: Receiver) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        arrival = Arrival(self.path, dict(self.headers.items()), body, time.time())
        with r.lock:
            r.arrivals.append(arrival)
            script = r.scripts.get(self.path)
            answer = script.pop(0) if script else None
        if answer is None:
            answer = Answer(503 if r.flaky and random.random() < r.flaky else 200, {}, r.slow_s)
        if answer.delay_s:
            time.sleep(answer.delay_s)
        if answer.status == 200:
            key = arrival.header("Idempotency-Key") or ""
            with r.lock:
                if key and key in r.processed:
                    r.duplicates += 1  # acknowledged, not processed again
                else:
                    r.processed[key] = r.processed.get(key, 0) + 1
                    r.bodies.append(json.loads(body) if body else None)
        payload = json.dumps({"status": answer.status}).encode()
        self.send_response(answer.status)
        for k, v in answer.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST
    do_PUT = do_POST
    do_PATCH = do_POST


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    port = httpd.server_address[1]
    httpd.receiver = Receiver(f"http://127.0.0.1:{port}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.receiver
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
