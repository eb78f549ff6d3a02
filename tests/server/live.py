"""The service under test, for real: ``create_app`` under uvicorn on 127.0.0.1 (a port the
kernel picks), in a thread with its own event loop, or ``python -m voicefn.server serve`` as a
subprocess. Tests talk to it over HTTP like any client."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from voicefn.server import ServerConfig, create_app
from voicefn.server.platform import Platform

START_TIMEOUT = 60.0  # a busy 2-core machine, migrations included


@dataclass
class Live:
    url: str
    platform: Platform
    key: str  # the first workspace's operator key

    def client(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0, **kw)


@contextmanager
def live_server(config: ServerConfig) -> Iterator[Live]:
    app = create_app(config)
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of such a listener
    # (without it every answer waits ~40 ms for a delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", ws="none")
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="voicefn-live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if failure or not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(10)
            raise RuntimeError(f"the server did not start: {failure or 'timeout'}")
        time.sleep(0.01)
    platform: Platform = app.state.platform
    key = platform.first_key.secret if platform.first_key else ""
    try:
        yield Live(f"http://127.0.0.1:{port}", platform, key)
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


@dataclass
class Process:
    """``python -m voicefn.server serve`` in a subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    key: str | None
    lines: list[str] = field(default_factory=list)
    log_path: Path | None = None

    def client(self, key: str, **kw: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0, **kw
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def logs(self) -> str:
        assert self.log_path is not None
        return self.log_path.read_text("utf-8", "replace")


def serve_argv(data_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "voicefn.server", "serve", "--port", "0",
        "--data-dir", str(data_dir), *extra,
    ]  # fmt: skip


@contextmanager
def serve_process(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[Process]:
    """Start the server command; wait for its ``voicefn serve: URL`` line (and the key line that
    follows on a first start)."""
    log_path = data_dir.parent / f"{data_dir.name}-{time.monotonic_ns()}.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        serve_argv(data_dir, *extra),
        stdout=subprocess.PIPE,
        stderr=log_file,  # a file, not a pipe: nobody has to keep reading the logs
        env={**os.environ, **(env or {})},
    )
    log_file.close()
    assert proc.stdout is not None
    said: queue.Queue[str | None] = queue.Queue()

    def read(stream: Any) -> None:
        for raw in stream:
            said.put(raw.decode("utf-8", "replace").rstrip("\n"))
        said.put(None)

    threading.Thread(target=read, args=(proc.stdout,), daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    url = key = None
    while time.monotonic() < deadline:
        try:
            line = said.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line is None:
            break
        lines.append(line)
        if match := re.match(r"voicefn serve: (\S+)", line):
            url = match.group(1)
        if match := re.match(r"API key: (\S+)$", line):
            key = match.group(1)
        if line.startswith("Dashboard:"):
            break
    if url is None or not lines or not lines[-1].startswith("Dashboard:"):
        proc.kill()
        proc.wait(30)
        proc.stdout.close()
        raise RuntimeError(f"serve did not start: {lines} {log_path.read_text()[-3000:]}")
    process = Process(proc, url, key, lines, log_path)
    try:
        yield process
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
