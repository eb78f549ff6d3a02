"""The supervisor: one warm Deno process per tenant, one fresh Worker per job.

Each tenant's Deno process runs ``host.js`` inside bubblewrap (no network, no host files but
the Deno binary, its libraries, the host/worker scripts and the vendored libraries), as an
unprivileged uid, in its own cgroup v1 memory/pids limit where the supervisor may create one.
The host talks to this supervisor over a Unix socket (length-prefixed JSON frames) and runs
every job in a fresh, pre-warmed Worker with ``deno.permissions: "none"``; the Worker's
``fetch`` (and so axios) comes here, to the caller's ``egress`` callback.

Everything the Deno process sends is treated as untrusted: sizes are bounded, shapes checked,
and a protocol violation kills the process. A memory bomb kills only that tenant's process;
the next job (or a background respawn) starts a new one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...egress import EgressDenied
from ._host import (
    DEFAULT_BWRAP,
    PACKAGE_DIR,
    SANDBOX_UID,
    Cgroup,
    CgroupParents,
    SandboxUnavailable,
    find_deno,
    library_binds,
    tree_rss_bytes,
)

__all__ = ["Egress", "ErrorKind", "JavaScriptSandbox", "Limits", "Mode", "Outcome"]

log = logging.getLogger("voicefn.sandbox.javascript")

Egress = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Mode = Literal["isolated", "unsafe-process"]
ErrorKind = Literal[
    "timeout",
    "memory",
    "crashed",
    "invalid_output",
    "exception",
    "too_many_requests",
    "unavailable",
]

HOST_JS = PACKAGE_DIR / "host.js"
WORKER_JS = PACKAGE_DIR / "worker.js"
VENDOR_DIR = PACKAGE_DIR / "vendor"

MAX_CODE_CHARS = 512 * 1024
MAX_DATA_BYTES = 8 << 20
MAX_URL = 8192
MAX_HEADERS = 100
MAX_HEADER_CHARS = 8192
MAX_REQUEST_BODY_B64 = 6 << 20
MAX_RESPONSE_BODY_B64 = 11 << 20  # ~8 MiB decoded
MAX_DETAIL = 600
MAX_LOG_MESSAGE = 4000
STDERR_TAIL = 16 * 1024
START_TIMEOUT_S = 15.0
BACKSTOP_GRACE_S = 2.0  # past the deadline the host should have enforced: kill the process
EXIT_WAIT_S = 2.0
HEAP_OVERHEAD_MB = 192  # cgroup limit = memory_mb (a job's V8 heap) + the host, spare worker...
PIDS_MAX = 256
WATCHDOG_INTERVAL_S = 0.05
WEAK_NOTE = (
    "WEAKLY isolated (mode='unsafe-process'): Deno ran without bubblewrap namespaces; only "
    "Worker permissions, Deno's own flags and the memory limit stood between the function "
    "and the host."
)

_LEVELS = frozenset({"log", "info", "debug", "warn", "error"})
_JS_LAYERS = frozenset(
    {"wall-clock", "deno-permissions", "deno-no-remote", "output-limit", "request-limit"}
)
_RESULT_ERRORS = frozenset({"exception", "invalid_output", "timeout", "crashed"})
_METHOD = re.compile(r"^[A-Z]{1,16}$")
_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_RESERVED = frozenset(
    [
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "new",
        "null",
        "return",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "let",
        "static",
        "implements",
        "interface",
        "package",
        "private",
        "protected",
        "public",
        "await",
        "arguments",
        "eval",
    ]
)
_DROP_RESPONSE_HEADERS = frozenset(
    {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """Per-job limits. ``memory_mb`` is the job's V8 heap; the tenant's Deno process (host,
    spare worker, off-heap buffers) is capped at ``memory_mb`` + 192 MiB by its cgroup."""

    timeout_s: float = 10.0
    memory_mb: int = 256
    max_output_bytes: int = 1 << 20
    max_log_lines: int = 200
    max_http_requests: int = 20

    def __post_init__(self) -> None:
        t = self.timeout_s
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
            raise ValueError(f"Limits.timeout_s must be a positive number, not {t!r}")
        for name in ("memory_mb", "max_output_bytes", "max_log_lines", "max_http_requests"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Limits.{name} must be a non-negative int, not {value!r}")
        if self.memory_mb < 16:
            raise ValueError(f"Limits.memory_mb must be at least 16, not {self.memory_mb}")


@dataclass
class Outcome:
    """How one job ended. Everything in it is safe to log; ``detail`` is short."""

    ok: bool
    value: Any
    error: ErrorKind | None
    detail: str
    logs: list[dict[str, Any]] = field(default_factory=list)
    http: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    isolation: str = "isolated"  # or "weak" (mode="unsafe-process")

    @property
    def weakly_isolated(self) -> bool:
        return self.isolation != "isolated"


class _ProtocolError(Exception):
    pass


class _Eof(Exception):
    pass


def _clean(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = _CONTROL.sub("", text)
    return text if len(text) <= limit else text[:limit] + "…"


def _safe_url(url: str) -> str:
    """The URL for ``Outcome.http``: without user:password, bounded."""
    with contextlib.suppress(ValueError):
        parts = urllib.parse.urlsplit(url)
        if "@" in parts.netloc:
            url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return _clean(url, 2000)


def _encode(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return len(body).to_bytes(4, "big") + body


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# ------------------------------------------------------------------------------- one job


class _Job:
    """The supervisor's side of one job: logs, HTTP through egress, limits, the result."""

    def __init__(
        self, job_id: int, limits: Limits, egress: Egress, send: Callable[[dict[str, Any]], None]
    ) -> None:
        self.id = job_id
        self.limits = limits
        self.egress = egress
        self.send = send
        self.logs: list[dict[str, Any]] = []
        self.dropped_logs = 0
        self.http: list[dict[str, Any]] = []
        self.http_count = 0
        self.denied = False
        self.too_many = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.deadline = time.monotonic() + limits.timeout_s

    def on_log(self, frame: dict[str, Any]) -> None:
        if len(self.logs) >= self.limits.max_log_lines:
            self.dropped_logs += 1
            return
        level = frame.get("level")
        self.logs.append(
            {
                "level": level if isinstance(level, str) and level in _LEVELS else "log",
                "message": _clean(frame.get("message", ""), MAX_LOG_MESSAGE),
            }
        )

    def on_fetch(self, frame: dict[str, Any]) -> None:
        rid = frame.get("rid")
        if not isinstance(rid, int) or isinstance(rid, bool):
            raise _ProtocolError("an HTTP request without an id")
        request = _validate_request(frame)
        if isinstance(request, str):
            raise _ProtocolError(request)
        self.http_count += 1
        if self.http_count > self.limits.max_http_requests:
            if not self.too_many:
                self.too_many = True
                self.http.append(
                    {
                        "method": request["method"],
                        "url": _safe_url(request["url"]),
                        "error": "too many requests",
                        "ms": 0.0,
                    }
                )
                self.send(
                    {
                        "t": "stop",
                        "id": self.id,
                        "error": "too_many_requests",
                        "detail": f"more than {self.limits.max_http_requests} HTTP requests",
                        "layer": "request-limit",
                    }
                )
            return
        task = asyncio.ensure_future(self._egress_call(rid, request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _egress_call(self, rid: int, request: dict[str, Any]) -> None:
        started = time.perf_counter()
        record: dict[str, Any] = {"method": request["method"], "url": _safe_url(request["url"])}
        self.http.append(record)
        remaining = max(0.001, self.deadline - time.monotonic())
        request["timeout"] = round(remaining, 3)
        try:
            response = await asyncio.wait_for(self.egress(dict(request)), timeout=remaining)
            if isinstance(response, dict) and response.get("denied") is True:
                self.denied = True
            reply = _validate_response(response)
        except EgressDenied as exc:
            self.denied = True
            reply = {"error": f"refused by the egress policy: {_clean(str(exc), 300)}"}
        except TimeoutError:
            reply = {"error": "the request timed out"}
        except asyncio.CancelledError:
            record["error"] = "cancelled"
            record["ms"] = _ms(time.perf_counter() - started)
            raise
        except Exception as exc:
            reply = {"error": f"the request failed ({type(exc).__name__})"}
        if "error" in reply:
            record["error"] = reply["error"]
        else:
            record["status"] = reply["status"]
        record["ms"] = _ms(time.perf_counter() - started)
        self.send({"t": "fetch_result", "id": self.id, "rid": rid, **reply})

    async def cancel_tasks(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def outcome(
        self, ok: bool, value: Any, error: ErrorKind | None, detail: str, stopped_by: str | None
    ) -> Outcome:
        logs = list(self.logs)
        if self.dropped_logs:
            logs.append(
                {
                    "level": "warn",
                    "message": f"[sandbox] further log lines were dropped "
                    f"(limit {self.limits.max_log_lines})",
                }
            )
        if self.too_many and error != "memory":
            ok, value, error, stopped_by = False, None, "too_many_requests", "request-limit"
            detail = f"the function made more than {self.limits.max_http_requests} HTTP requests"
        if stopped_by is None and self.denied:
            stopped_by = "egress-policy"
        return Outcome(
            ok=ok,
            value=value,
            error=error,
            detail=_clean(detail, MAX_DETAIL),
            logs=logs,
            http=list(self.http),
            stopped_by=stopped_by,
        )

    def result_outcome(self, frame: dict[str, Any]) -> Outcome:
        if frame.get("ok") is True:
            text = frame.get("json")
            if not isinstance(text, str):
                raise _ProtocolError("a result without a value")
            if len(text.encode("utf-8", "surrogatepass")) > self.limits.max_output_bytes:
                return self.outcome(
                    False,
                    None,
                    "invalid_output",
                    f"the return value is larger than {self.limits.max_output_bytes} bytes",
                    "output-limit",
                )
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                return self.outcome(
                    False, None, "invalid_output", "the return value is not valid JSON", None
                )
            return self.outcome(True, value, None, "", None)
        error = frame.get("error")
        if error == "too_many_requests" and self.too_many:
            return self.outcome(False, None, "too_many_requests", "", "request-limit")
        kind: ErrorKind = error if isinstance(error, str) and error in _RESULT_ERRORS else "crashed"  # type: ignore[assignment]
        layer = frame.get("layer")
        return self.outcome(
            False,
            None,
            kind,
            _clean(frame.get("detail", ""), MAX_DETAIL) or "the function failed",
            layer if isinstance(layer, str) and layer in _JS_LAYERS else None,
        )


def _validate_request(msg: dict[str, Any]) -> dict[str, Any] | str:
    method, url, headers, body = (
        msg.get("method"),
        msg.get("url"),
        msg.get("headers"),
        msg.get("body"),
    )
    if not isinstance(method, str) or not _METHOD.match(method):
        return "a bad HTTP method"
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        return "a bad URL"
    if not isinstance(headers, list) or len(headers) > MAX_HEADERS:
        return "bad HTTP headers"
    clean_headers: list[list[str]] = []
    for pair in headers:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(x, str) and len(x) <= MAX_HEADER_CHARS for x in pair)
        ):
            return "bad HTTP headers"
        clean_headers.append([pair[0], pair[1]])
    if not isinstance(body, str) or len(body) > MAX_REQUEST_BODY_B64:
        return "a bad HTTP body"
    try:
        base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return "a bad HTTP body"
    return {"method": method, "url": url, "headers": clean_headers, "body": body}


def _validate_response(response: Any) -> dict[str, Any]:
    if not isinstance(response, dict):
        return {"error": "the egress callback returned no response"}
    if "error" in response:
        return {"error": _clean(response["error"], 500)}
    status, headers, body = (
        response.get("status"),
        response.get("headers", []),
        response.get("body", ""),
    )
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return {"error": "the egress callback returned a bad status"}
    if not isinstance(body, str) or len(body) > MAX_RESPONSE_BODY_B64:
        return {"error": "the response body is too large or malformed"}
    try:
        base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return {"error": "the response body is malformed"}
    clean_headers: list[list[str]] = []
    for pair in list(headers or [])[:MAX_HEADERS]:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            key, value = _clean(str(pair[0]), 256), _clean(str(pair[1]), MAX_HEADER_CHARS)
            if key and key.lower() not in _DROP_RESPONSE_HEADERS:
                clean_headers.append([key, value])
    return {"status": status, "headers": clean_headers, "body": body}


# ------------------------------------------------------------------------------- one process


@dataclass(frozen=True)
class _Config:
    mode: Mode
    deno: str
    bwrap: str
    lib_binds: tuple[str, ...]
    cgroups: CgroupParents | None
    uid: int | None  # drop to this uid (when the supervisor is root)
    workdir: Path


class _TenantProcess:
    """One tenant's Deno process (for one ``memory_mb``): spawn, run jobs one at a time, die."""

    def __init__(self, config: _Config, tenant: str, memory_mb: int) -> None:
        self.config = config
        self.tenant = tenant
        self.memory_mb = memory_mb
        self.lock = asyncio.Lock()
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.cgroup: Cgroup | None = None
        self.oom_base = 0
        self.stderr_tail = bytearray()
        self.stderr_task: asyncio.Task[None] | None = None
        self.watchdog_task: asyncio.Task[None] | None = None
        self.watchdog_fired = False
        self.killed_by_supervisor = False
        self.socket_path: Path | None = None
        self.next_job = 0
        self.cold_start_ms: float | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self.writer is not None

    # -- spawning ------------------------------------------------------------------------

    def _command(self, sock_in_sandbox: str) -> list[str]:
        cfg = self.config
        if cfg.mode == "isolated":
            deno, host, worker, vendor = (
                "/sandbox/deno",
                "/sandbox/host.js",
                "/sandbox/worker.js",
                "/sandbox/vendor",
            )
        else:
            deno, host, worker, vendor = cfg.deno, str(HOST_JS), str(WORKER_JS), str(VENDOR_DIR)
        deno_cmd = [
            deno,
            "run",
            "--no-prompt",
            "--no-remote",
            "--no-npm",
            "--no-config",
            "--no-lock",
            "--cached-only",
            "--no-code-cache",
            "--no-check",
            "--unstable-worker-options",
            f"--allow-read={worker},{vendor},{sock_in_sandbox}",
            f"--allow-write={sock_in_sandbox}",
            f"--allow-net=unix:{sock_in_sandbox}",
            "--deny-env",
            "--deny-run",
            "--deny-ffi",
            "--deny-sys",
            f"--v8-flags=--max-old-space-size={self.memory_mb}",
            host,
            sock_in_sandbox,
        ]
        if cfg.mode != "isolated":
            return deno_cmd
        assert self.socket_path is not None
        return [
            cfg.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--setenv",
            "DENO_DIR",
            "/nonexistent",
            "--setenv",
            "NO_COLOR",
            "1",
            "--setenv",
            "DENO_NO_UPDATE_CHECK",
            "1",
            *cfg.lib_binds,
            "--ro-bind",
            cfg.deno,
            "/sandbox/deno",
            "--ro-bind",
            str(HOST_JS),
            "/sandbox/host.js",
            "--ro-bind",
            str(WORKER_JS),
            "/sandbox/worker.js",
            "--ro-bind",
            str(VENDOR_DIR),
            "/sandbox/vendor",
            "--ro-bind",
            str(self.socket_path),
            sock_in_sandbox,
            # Deno reads /proc/self/exe (std::env::current_exe) and panics without it; a static
            # link is enough (only Deno runs in here), so no procfs is mounted.
            "--symlink",
            "/sandbox/deno",
            "/proc/self/exe",
            "--remount-ro",
            "/",
            "--chdir",
            "/sandbox",
            *deno_cmd,
        ]

    async def spawn(self) -> None:
        """Start the process and wait for the host's ``ready``. Raises RuntimeError on failure."""
        started = time.perf_counter()
        cfg = self.config
        self.stderr_tail.clear()
        self.watchdog_fired = False
        self.killed_by_supervisor = False
        self.socket_path = cfg.workdir / f"{secrets.token_hex(12)}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.socket_path))
            listener.listen(1)
            listener.setblocking(False)
            if cfg.uid is not None:
                os.chown(self.socket_path, cfg.uid, -1)
            os.chmod(self.socket_path, 0o600)
            sock_in_sandbox = (
                "/sandbox/host.sock" if cfg.mode == "isolated" else str(self.socket_path)
            )
            argv = self._command(sock_in_sandbox)
            procs_files: list[str] = []
            if cfg.cgroups is not None:
                self.cgroup = cfg.cgroups.create(
                    (self.memory_mb + HEAP_OVERHEAD_MB) << 20, PIDS_MAX, cfg.uid
                )
                self.oom_base = max(0, self.cgroup.oom_kills())
                procs_files = self.cgroup.procs_files
            # Join the cgroups before exec, so every descendant is inside from the start; no
            # core dumps (a V8 OOM aborts), no file writes, bounded descriptors.
            argv = [
                "/bin/sh",
                "-c",
                "ulimit -c 0 && ulimit -f 0 && ulimit -n 1024 || exit 124; "
                'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; '
                'shift; exec "$@"',
                "sh",
                *procs_files,
                "--",
                *argv,
            ]
            extra: dict[str, Any] = {}
            if cfg.uid is not None:
                extra = {"user": cfg.uid, "group": cfg.uid, "extra_groups": []}
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                cwd="/",
                env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "DENO_DIR": "/nonexistent"},
                **extra,
            )
            self.stderr_task = asyncio.ensure_future(self._drain_stderr())
            if cfg.cgroups is None:
                self.watchdog_task = asyncio.ensure_future(self._watchdog())
            loop = asyncio.get_running_loop()
            try:
                conn, _ = await asyncio.wait_for(loop.sock_accept(listener), START_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError("the Deno process did not connect in time") from None
            self.reader, self.writer = await asyncio.open_unix_connection(sock=conn)
            frame = await asyncio.wait_for(self._read_frame(1 << 20), START_TIMEOUT_S)
            if frame.get("t") != "ready":
                raise RuntimeError(f"the Deno process failed: {_clean(frame.get('detail'), 300)}")
        except (OSError, RuntimeError, TimeoutError, _Eof, _ProtocolError) as exc:
            await self.kill()
            tail = _clean(bytes(self.stderr_tail[-600:]).decode("utf-8", "replace"), 600)
            raise RuntimeError(f"{exc or type(exc).__name__}; stderr: {tail}") from exc
        except asyncio.CancelledError:
            await asyncio.shield(self.kill())
            raise
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        self.cold_start_ms = _ms(time.perf_counter() - started)

    async def _drain_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        stream = self.proc.stderr
        with contextlib.suppress(Exception):
            while chunk := await stream.read(65536):
                self.stderr_tail += chunk
                if len(self.stderr_tail) > STDERR_TAIL:
                    del self.stderr_tail[: len(self.stderr_tail) - STDERR_TAIL]

    async def _watchdog(self) -> None:
        """Without a cgroup: kill the process tree when its RSS passes the limit."""
        proc = self.proc
        assert proc is not None
        limit = (self.memory_mb + HEAP_OVERHEAD_MB) << 20
        while proc.returncode is None:
            rss = await asyncio.to_thread(tree_rss_bytes, proc.pid)
            if rss > limit:
                self.watchdog_fired = True
                await self.kill()
                return
            await asyncio.sleep(WATCHDOG_INTERVAL_S)

    # -- framing -------------------------------------------------------------------------

    async def _read_frame(self, max_len: int) -> dict[str, Any]:
        assert self.reader is not None
        try:
            head = await self.reader.readexactly(4)
            length = int.from_bytes(head, "big")
            if length > max_len:
                raise _ProtocolError(f"a frame of {length} bytes")
            body = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _Eof from exc
        try:
            msg = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise _ProtocolError("a frame that is not JSON") from exc
        if not isinstance(msg, dict):
            raise _ProtocolError("a frame that is not an object")
        return msg

    def send(self, msg: dict[str, Any]) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(_encode(msg))

    # -- running -------------------------------------------------------------------------

    async def run(
        self, code: str, entrypoint: str, data_json: str, limits: Limits, egress: Egress
    ) -> Outcome:
        self.next_job += 1
        job = _Job(self.next_job, limits, egress, self.send)
        max_frame = max(8 << 20, 6 * limits.max_output_bytes + (1 << 20))
        self.send(
            {
                "t": "run",
                "id": job.id,
                "code": code,
                "entrypoint": entrypoint,
                "data": data_json,
                "timeout_ms": round(limits.timeout_s * 1000),
                "max_output_bytes": limits.max_output_bytes,
                "max_log_lines": limits.max_log_lines,
                "max_http_requests": limits.max_http_requests,
            }
        )
        backstop = job.deadline + BACKSTOP_GRACE_S
        try:
            while True:
                remaining = backstop - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                frame = await asyncio.wait_for(self._read_frame(max_frame), remaining)
                kind = frame.get("t")
                if frame.get("id") != job.id:
                    if kind in ("log", "fetch", "result"):
                        raise _ProtocolError("a frame for another job")
                    continue
                if kind == "log":
                    job.on_log(frame)
                elif kind == "fetch":
                    job.on_fetch(frame)
                elif kind == "result":
                    return job.result_outcome(frame)
                else:
                    raise _ProtocolError("an unknown frame")
        except TimeoutError:
            self.killed_by_supervisor = True
            await self.kill()
            return job.outcome(
                False,
                None,
                "timeout",
                f"the function did not finish within {limits.timeout_s:g} s and the sandbox "
                "process did not stop it; it was killed",
                "supervisor-kill",
            )
        except _ProtocolError as exc:
            await self.kill()
            return job.outcome(False, None, "crashed", f"protocol violation: {exc}", None)
        except _Eof:
            error, detail, layer = await self._death()
            return job.outcome(False, None, error, detail, layer)
        finally:
            await job.cancel_tasks()

    async def _death(self) -> tuple[ErrorKind, str, str | None]:
        """Why the process died (it closed the socket)."""
        proc = self.proc
        if proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), EXIT_WAIT_S)
        oom_killed = self.cgroup is not None and self.cgroup.oom_kills() > self.oom_base
        await self.kill()
        stderr = bytes(self.stderr_tail).decode("utf-8", "replace")
        limit = f"{self.memory_mb} MiB"
        if oom_killed:
            return "memory", f"the function used too much memory (limit {limit})", "cgroup-memory"
        if self.watchdog_fired:
            return "memory", f"the function used too much memory (limit {limit})", "rss-watchdog"
        if re.search(r"out of memory|heap limit", stderr, re.IGNORECASE):
            return "memory", f"the function used more than its {limit} heap", "v8-heap"
        code = proc.returncode if proc is not None else None
        return "crashed", f"the sandbox process exited unexpectedly (status {code})", None

    async def kill(self) -> None:
        """Kill the process tree and release everything it held. Idempotent."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            # Not proc.kill(): Popen.send_signal() polls first, which can reap the child behind
            # asyncio's child watcher. The process leads its own session (start_new_session).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()
        if proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), EXIT_WAIT_S)
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.reader = None
        if self.stderr_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.stderr_task), 1.0)
            self.stderr_task.cancel()
            self.stderr_task = None
        if self.watchdog_task is not None and self.watchdog_task is not asyncio.current_task():
            self.watchdog_task.cancel()
            self.watchdog_task = None
        if self.cgroup is not None:
            cgroup = self.cgroup
            for _ in range(50):
                if cgroup.remove():
                    break
                cgroup.kill_all()
                await asyncio.sleep(0.02)
            else:
                log.warning("could not remove cgroup %s", cgroup.dirs)
            self.cgroup = None


# ------------------------------------------------------------------------------- sandbox


class JavaScriptSandbox:
    """Runs customers' post-call JavaScript functions (hostile code), one Deno process per
    tenant, one fresh Worker per job.

    ``mode="isolated"`` (the default) needs bubblewrap and user namespaces and raises
    :class:`SandboxUnavailable` from :meth:`start` without them. ``mode="unsafe-process"`` is an
    explicit operator choice: Deno without namespaces (still no network, Worker permissions
    "none"), and every :class:`Outcome` says it ran weakly isolated.
    """

    def __init__(
        self,
        *,
        mode: Mode = "isolated",
        deno: str | None = None,
        bwrap: str = DEFAULT_BWRAP,
        max_processes: int = 32,
    ) -> None:
        if mode not in ("isolated", "unsafe-process"):
            raise ValueError(f"mode must be 'isolated' or 'unsafe-process', not {mode!r}")
        self.mode: Mode = mode
        self._deno_arg = deno
        self._bwrap = bwrap
        self.max_processes = max(1, max_processes)
        self._config: _Config | None = None
        self._processes: collections.OrderedDict[tuple[str, int], _TenantProcess] = (
            collections.OrderedDict()
        )
        self._start_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def memory_layer(self) -> str:
        """What enforces the memory limit of a tenant process: cgroup-memory or rss-watchdog
        (each on top of V8's per-isolate heap limit)."""
        if self._config is not None and self._config.cgroups is not None:
            return "cgroup-memory"
        return "rss-watchdog"

    async def __aenter__(self) -> JavaScriptSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Check the host (and, isolated, that bubblewrap really starts Deno). Idempotent."""
        async with self._start_lock:
            if self._config is not None:
                return
            if self._closed:
                raise RuntimeError("the sandbox is closed")
            deno = await asyncio.to_thread(find_deno, self._deno_arg)
            await asyncio.to_thread(self._check_files)
            uid = SANDBOX_UID if os.geteuid() == 0 else None
            lib_binds: tuple[str, ...] = ()
            if self.mode == "isolated":
                lib_binds = tuple(await asyncio.to_thread(library_binds, deno))
                await self._probe(deno, lib_binds, uid)
            cgroups = await asyncio.to_thread(CgroupParents.detect)
            workdir = Path(tempfile.mkdtemp(prefix="voicefn-js-"))
            os.chmod(workdir, 0o711)
            self._config = _Config(
                mode=self.mode,
                deno=deno,
                bwrap=self._bwrap,
                lib_binds=lib_binds,
                cgroups=cgroups,
                uid=uid,
                workdir=workdir,
            )
            if self.mode != "isolated":
                log.warning("JavaScript sandbox runs %s", WEAK_NOTE)
            if cgroups is None:
                log.info(
                    "no writable cgroup v1 memory controller; memory is limited by V8's heap "
                    "limit and an RSS watchdog"
                )

    def _check_files(self) -> None:
        for path in (HOST_JS, WORKER_JS, VENDOR_DIR / "axios.js"):
            if not path.is_file():
                raise SandboxUnavailable(f"the sandbox file {path} is missing (broken install).")
        if self.mode == "isolated" and not (
            os.path.isfile(self._bwrap) and os.access(self._bwrap, os.X_OK)
        ):
            raise SandboxUnavailable(
                f"bubblewrap was not found at {self._bwrap}. Install it (Debian/Ubuntu: "
                "`apt-get install bubblewrap`) or pass bwrap=/path/to/bwrap."
            )

    async def _probe(self, deno: str, lib_binds: tuple[str, ...], uid: int | None) -> None:
        argv = [
            self._bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv",
            "DENO_DIR",
            "/nonexistent",
            *lib_binds,
            "--ro-bind",
            deno,
            "/sandbox/deno",
            "--remount-ro",
            "/",
            "/sandbox/deno",
            "--version",
        ]
        extra: dict[str, Any] = {}
        if uid is not None:
            extra = {"user": uid, "group": uid, "extra_groups": []}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                **extra,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        except (OSError, TimeoutError) as exc:
            raise SandboxUnavailable(f"bubblewrap could not be run ({exc}).") from exc
        if proc.returncode != 0 or not out.startswith(b"deno "):
            message = _clean(err.decode("utf-8", "replace").strip(), 300)
            raise SandboxUnavailable(
                "bubblewrap could not start Deno in new namespaces "
                f"({message or f'exit status {proc.returncode}'}). Unprivileged user namespaces "
                "must be enabled (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu "
                "kernel.apparmor_restrict_unprivileged_userns=0), and the Deno binary and this "
                f"package must be readable by uid {uid if uid is not None else os.getuid()}."
            )

    async def aclose(self) -> None:
        """Kill every tenant process and remove the sandbox's cgroups and sockets."""
        self._closed = True
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        processes = list(self._processes.values())
        self._processes.clear()
        for process in processes:
            await process.kill()
        if self._config is not None:
            shutil.rmtree(self._config.workdir, ignore_errors=True)
            self._config = None

    async def run(
        self,
        code: str,
        entrypoint: str,
        data: dict[str, Any],
        *,
        egress: Egress,
        limits: Limits = Limits(),
        tenant: str = "default",
    ) -> Outcome:
        """Run ``entrypoint(data)`` from ``code`` in a fresh Worker of ``tenant``'s process."""
        started = time.perf_counter()
        if not isinstance(code, str) or not isinstance(entrypoint, str):
            raise TypeError("code and entrypoint must be strings")
        if not isinstance(tenant, str):
            raise TypeError("tenant must be a string")
        data_json = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        if len(data_json) > MAX_DATA_BYTES:
            raise ValueError(f"data is larger than {MAX_DATA_BYTES} bytes")
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        await self.start()
        isolation = "isolated" if self.mode == "isolated" else "weak"
        problem = None
        if len(code) > MAX_CODE_CHARS:
            problem = f"the code is longer than {MAX_CODE_CHARS} characters"
        elif not _IDENT.match(entrypoint) or entrypoint in _RESERVED:
            problem = f"the entrypoint {_clean(entrypoint, 80)!r} is not a JavaScript identifier"
        if problem is not None:
            refused = Outcome(False, None, "exception", problem, isolation=isolation)
            total = _ms(time.perf_counter() - started)
            refused.timings = {"wait_ms": 0.0, "run_ms": 0.0, "total_ms": total}
            return refused

        process = await self._process(tenant, limits.memory_mb)
        async with process.lock:
            outcome: Outcome | None = None
            if not process.alive:
                try:
                    await process.spawn()
                except RuntimeError as exc:
                    log.warning(
                        "JavaScript sandbox process for %r failed to start: %s", tenant, exc
                    )
                    outcome = Outcome(
                        False, None, "unavailable", "the sandbox process could not be started"
                    )
            ready = time.perf_counter()
            if outcome is None:
                outcome = await process.run(code, entrypoint, data_json, limits, egress)
            finished = time.perf_counter()
            died = not process.alive
        outcome.isolation = isolation
        outcome.timings = {
            "wait_ms": _ms(ready - started),
            "run_ms": _ms(finished - ready),
            "total_ms": _ms(finished - started),
        }
        if died and outcome.error != "unavailable" and not self._closed:
            self._respawn_later(process)
        return outcome

    async def _process(self, tenant: str, memory_mb: int) -> _TenantProcess:
        assert self._config is not None
        key = (tenant, memory_mb)
        process = self._processes.get(key)
        if process is not None:
            self._processes.move_to_end(key)
            return process
        process = _TenantProcess(self._config, tenant, memory_mb)
        self._processes[key] = process
        while len(self._processes) > self.max_processes:
            victim_key = next(
                (k for k, p in self._processes.items() if not p.lock.locked() and k != key), None
            )
            if victim_key is None:
                break
            victim = self._processes.pop(victim_key)
            self._spawn_background(self._close_process(victim))
        return process

    @staticmethod
    async def _close_process(process: _TenantProcess) -> None:
        async with process.lock:
            await process.kill()

    def _respawn_later(self, process: _TenantProcess) -> None:
        """Keep the tenant warm after its process died (memory bomb, crash, kill)."""

        async def respawn() -> None:
            async with process.lock:
                if process.alive or self._closed:
                    return
                if self._processes.get((process.tenant, process.memory_mb)) is not process:
                    return
                try:
                    await process.spawn()
                except RuntimeError as exc:
                    log.warning(
                        "respawning the sandbox process for %r failed: %s", process.tenant, exc
                    )

        self._spawn_background(respawn())

    def _spawn_background(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def cold_start_ms(
        self, tenant: str = "default", memory_mb: int = Limits.memory_mb
    ) -> float | None:
        """How long the tenant's current process took to start (None if there is none)."""
        process = self._processes.get((tenant, memory_mb))
        return process.cold_start_ms if process is not None else None
