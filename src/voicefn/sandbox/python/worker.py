"""The program inside the Python sandbox: a zygote that pre-forks one-shot, locked-down children.

Runs under the system ``python3`` inside bubblewrap (or, in the explicit ``unsafe-process`` mode,
as a plain process). Only the standard library, httpx and its pure-Python dependencies, the
python3-seccomp extension and this file are visible, so this module must not import voicefn.

Zygote (one per worker): reads its init message from the control socket, imports and warms up
everything (httpx, asyncio, logging, json, one fake invocation end to end), then waits. On
``spawn`` it forks a child and hands the supervisor the child's three pipes (SCM_RIGHTS); on
``kill`` it kills a child; when a child ends it reports how (exit code / signal / CPU / RSS).

Child (one per invocation): keeps only its pipes (fd 3 in, fd 4 out, fd 1/2 -> a captured pipe),
makes a fresh event loop, waits for its ``run`` message, applies rlimits and the seccomp filter,
runs ``await entrypoint(ctx, **arguments)`` once, sends ``result`` or ``error``, and exits. No
state survives to the next invocation: the next child is a fresh fork of the zygote.

Frames on every pipe: a 4-byte big-endian length, then UTF-8 JSON.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import errno
import fcntl
import gc
import importlib.util
import inspect
import io
import json
import logging
import os
import random
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

import httpx

HEADER = struct.Struct(">I")
IN_FD = 3
OUT_FD = 4
CONTROL_MAX = 1 << 20
MAX_INBOUND_FRAME = 64 << 20
MAX_LOG_CHARS = 4000
MAX_DETAIL_CHARS = 1000
MAX_REQUEST_BODY = 4 << 20
FILENAME = "<function>"
CHILD_FAILED = 70

_ORIG_ASYNC_CLIENT = httpx.AsyncClient
_ORIG_CLIENT = httpx.Client

# --------------------------------------------------------------------------------- framing


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame_blocking(fd: int) -> dict[str, Any] | None:
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_INBOUND_FRAME:
        return None
    body = read_exact(fd, size)
    if body is None:
        return None
    msg = json.loads(body)
    return msg if isinstance(msg, dict) else None


# --------------------------------------------------------------------------------- channel


class Channel:
    """The child's private pipes to the supervisor: log/http/result out, http responses in."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self._buf = bytearray()
        self._pending: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._next_id = 0
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        os.set_blocking(self.in_fd, False)
        loop.add_reader(self.in_fd, self._on_readable)
        self._loop = loop

    def send(self, msg: dict[str, Any]) -> None:
        self.send_raw(encode(msg))

    def send_raw(self, payload: bytes) -> None:
        view = memoryview(HEADER.pack(len(payload)) + payload)
        with self._wlock:
            while view:
                view = view[os.write(self.out_fd, view) :]

    def _on_readable(self) -> None:
        with self._rlock:
            self._pump()

    def _pump(self) -> bool:
        """Read what is there and dispatch complete frames; False once the pipe is closed."""
        try:
            data = os.read(self.in_fd, 1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self.closed = True
            if self._loop is not None:
                self._loop.remove_reader(self.in_fd)
            for deliver in list(self._pending.values()):
                deliver({"error": "the sandbox channel was closed"})
            self._pending.clear()
            return False
        self._buf += data
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf)
            if len(self._buf) < HEADER.size + size:
                break
            body = bytes(self._buf[HEADER.size : HEADER.size + size])
            del self._buf[: HEADER.size + size]
            msg = json.loads(body)
            if isinstance(msg, dict) and msg.get("t") == "http_response":
                rid = msg.get("id")
                waiter = self._pending.pop(rid) if rid in self._pending else None
                if waiter is not None:
                    waiter(msg)
        return True

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def request(self, msg: dict[str, Any], wait_s: float | None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()

        def resolve(resp: dict[str, Any]) -> None:
            if not fut.done():
                fut.set_result(resp)

        def deliver(resp: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(resolve, resp)

        rid = self._new_id()
        self._pending[rid] = deliver
        try:
            self.send({**msg, "id": rid})
            return await asyncio.wait_for(fut, wait_s)
        finally:
            self._pending.pop(rid, None)

    def request_blocking(self, msg: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        box: list[dict[str, Any]] = []
        rid = self._new_id()
        self._pending[rid] = box.append
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.send({**msg, "id": rid})
            while not box:
                wait = 0.05
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        raise TimeoutError
                with self._rlock:
                    if box:
                        break
                    ready, _, _ = select.select([self.in_fd], [], [], wait)
                    if ready and not self._pump() and not box:
                        raise ConnectionError("the sandbox channel was closed")
            return box[0]
        finally:
            self._pending.pop(rid, None)


class WarmupChannel(Channel):
    """Answers everything itself: lets the zygote run a whole invocation before forking."""

    def __init__(self) -> None:
        super().__init__(-1, -1)
        self.sent: list[dict[str, Any]] = []

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def send_raw(self, payload: bytes) -> None:
        self.sent.append(json.loads(payload))

    def _answer(self) -> dict[str, Any]:
        body = base64.b64encode(b'{"ok": true, "items": [1, 2, 3]}').decode()
        return {"status": 200, "headers": [["content-type", "application/json"]], "body": body}

    async def request(self, msg: dict[str, Any], wait_s: float | None) -> dict[str, Any]:
        self.send(msg)
        await asyncio.sleep(0)
        return self._answer()

    def request_blocking(self, msg: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        self.send(msg)
        return self._answer()


# ------------------------------------------------------------------------------ httpx glue

_channel: Channel | None = None


def _current_channel() -> Channel:
    if _channel is None:
        raise RuntimeError("no sandbox channel")
    return _channel


class EgressRefused(httpx.ConnectError):
    """The supervisor's egress callback refused or failed the request."""


def _timeout_of(request: httpx.Request) -> float | None:
    timeouts = request.extensions.get("timeout") or {}
    values = [float(v) for v in timeouts.values() if isinstance(v, int | float)]
    return max(values) if values else None


def _request_message(request: httpx.Request, body: bytes) -> dict[str, Any]:
    if len(body) > MAX_REQUEST_BODY:
        raise httpx.RequestError(
            f"request body larger than {MAX_REQUEST_BODY} bytes", request=request
        )
    return {
        "t": "http",
        "method": request.method,
        "url": str(request.url),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw],
        "body": base64.b64encode(body).decode(),
        "timeout": _timeout_of(request),
    }


def _response(resp: dict[str, Any], request: httpx.Request) -> httpx.Response:
    if "error" in resp:
        raise EgressRefused(str(resp["error"]), request=request)
    try:
        status = int(resp["status"])
        headers = [(str(k), str(v)) for k, v in resp.get("headers") or []]
        content = base64.b64decode(resp.get("body") or "")
    except (KeyError, TypeError, ValueError):
        raise httpx.RemoteProtocolError("malformed response", request=request) from None
    return httpx.Response(status, headers=headers, content=content, request=request)


class ProtocolTransport(httpx.AsyncBaseTransport):
    """Sends each request over the sandbox channel; the supervisor's egress callback answers."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        msg = _request_message(request, await request.aread())
        try:
            resp = await _current_channel().request(msg, _timeout_of(request))
        except TimeoutError:
            raise httpx.ReadTimeout("no response in time", request=request) from None
        return _response(resp, request)


class SyncProtocolTransport(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        msg = _request_message(request, request.read())
        try:
            resp = _current_channel().request_blocking(msg, _timeout_of(request))
        except TimeoutError:
            raise httpx.ReadTimeout("no response in time", request=request) from None
        except ConnectionError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        return _response(resp, request)


class SandboxAsyncClient(_ORIG_ASYNC_CLIENT):
    """``httpx.AsyncClient`` inside the sandbox: the default transport goes through egress."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("transport") is None:
            kwargs["transport"] = ProtocolTransport()
        kwargs.pop("proxy", None)
        kwargs["trust_env"] = False
        super().__init__(*args, **kwargs)


class SandboxClient(_ORIG_CLIENT):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("transport") is None:
            kwargs["transport"] = SyncProtocolTransport()
        kwargs.pop("proxy", None)
        kwargs["trust_env"] = False
        super().__init__(*args, **kwargs)


def patch_httpx() -> None:
    httpx.AsyncClient = SandboxAsyncClient  # type: ignore[misc]
    httpx.Client = SandboxClient  # type: ignore[misc]
    api = sys.modules.get("httpx._api")
    if api is not None:
        api.Client = SandboxClient  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- user namespace


class LogSink:
    def __init__(self, channel: Channel, max_lines: int) -> None:
        self.channel = channel
        self.max_lines = max_lines
        self.count = 0

    def emit(self, level: str, message: str, source: str) -> None:
        if self.count > self.max_lines:
            return
        self.count += 1
        if self.count > self.max_lines:
            level, message, source = (
                "warning",
                "log limit reached: further lines dropped",
                "sandbox",
            )
        with contextlib.suppress(OSError, ValueError):
            self.channel.send(
                {"t": "log", "level": level, "message": message[:MAX_LOG_CHARS], "source": source}
            )


class SinkHandler(logging.Handler):
    def __init__(self, sink: LogSink) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                message += "\n" + "".join(traceback.format_exception_only(type(exc), exc)).strip()
        except Exception as exc:  # a broken format string in user code
            message = f"(unformattable log message: {type(exc).__name__})"
        self.sink.emit(record.levelname.lower(), message, "logger")


class LogStream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` for user code: each line becomes a log entry."""

    def __init__(self, sink: LogSink, level: str, source: str) -> None:
        self.sink = sink
        self.level = level
        self.source = source
        self._buf = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self._buf += s
        while "\n" in self._buf or len(self._buf) > MAX_LOG_CHARS:
            line, sep, rest = self._buf.partition("\n")
            if not sep:
                line, rest = self._buf[:MAX_LOG_CHARS], self._buf[MAX_LOG_CHARS:]
            self._buf = rest
            self.sink.emit(self.level, line, self.source)
        return len(s)

    def flush(self) -> None:
        if self._buf:
            line, self._buf = self._buf, ""
            self.sink.emit(self.level, line, self.source)


class CallInfo:
    """``ctx.call``: who is on the call."""

    __slots__ = ("agent_id", "call_sid", "execution_id", "from_number", "to_number")

    def __init__(self, data: dict[str, Any]) -> None:
        for key in self.__slots__:
            value = data.get(key)
            setattr(self, key, value if isinstance(value, str | int | float) else None)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self.__slots__ else default

    def __getitem__(self, key: str) -> Any:
        if key not in self.__slots__:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__slots__}

    def __repr__(self) -> str:
        return f"CallInfo({self.to_dict()!r})"


class RunContext:
    """``ctx``: ``variables`` (dict), ``call`` (agent_id, call_sid, ...), ``logger``, ``http``."""

    def __init__(self, variables: dict[str, Any], call: CallInfo, logger: logging.Logger) -> None:
        self.variables = variables
        self.userdata = variables
        self.call = call
        self.logger = logger
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` whose requests go through the platform's egress policy."""
        if self._http is None:
            self._http = SandboxAsyncClient(timeout=10.0, follow_redirects=True)
        return self._http

    def __repr__(self) -> str:
        return f"RunContext(call={self.call!r}, variables={list(self.variables)!r})"


def _user_line(exc: BaseException) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == FILENAME:
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def classify(exc: BaseException) -> str | None:
    """Which sandbox layer most likely raised ``exc`` (or its causes); None when none did."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, EgressRefused):
            return "egress-policy"
        if isinstance(seen, MemoryError):
            return "rlimit-as"
        if isinstance(seen, OSError):
            if seen.errno == errno.EPERM:
                return "seccomp"
            if seen.errno == errno.ENOENT:
                return "mount-namespace"
            if seen.errno == errno.EROFS:
                return "read-only-mount"
            if seen.errno == errno.EACCES:
                return "file-permissions"
            if seen.errno == errno.EMFILE:
                return "rlimit-nofile"
        if isinstance(seen, RuntimeError) and "can't start new thread" in str(seen):
            return "rlimit-nproc"
        seen = seen.__cause__ or seen.__context__
    return None


def describe(exc: BaseException) -> str:
    name = type(exc).__name__
    try:
        text = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)
    except Exception:
        text = "(unprintable)"
    detail = f"{name}: {text}" if text else name
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS] + "..."
    line = _user_line(exc)
    return f"{detail} (line {line})" if line else detail


def _too_big(value: Any, limit: int) -> bool:
    """A cheap lower bound of the JSON size, to refuse huge results before encoding them."""
    total = 0
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list | tuple):
            if id(item) in seen:
                continue  # shared or circular: json.dumps and the exact size check decide
            seen.add(id(item))
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 1
        if total > limit:
            return True
    return False


async def invoke(channel: Channel, run: dict[str, Any]) -> None:
    """Run one invocation and send its ``result`` or ``error`` frame."""
    global _channel
    _channel = channel
    channel.attach(asyncio.get_running_loop())
    limits = run.get("limits") or {}
    max_output = int(limits.get("max_output_bytes", 1 << 20))
    sink = LogSink(channel, int(limits.get("max_log_lines", 200)))
    logger = logging.Logger("function", logging.DEBUG)
    logger.addHandler(SinkHandler(sink))
    stdout, stderr = LogStream(sink, "info", "print"), LogStream(sink, "error", "stderr")
    sys.stdout, sys.stderr = stdout, stderr
    context = run.get("context") or {}
    variables = context.get("variables")
    call = context.get("call")
    ctx = RunContext(
        variables if isinstance(variables, dict) else {},
        CallInfo(call if isinstance(call, dict) else {}),
        logger,
    )
    namespace: dict[str, Any] = {
        "__name__": "__function__",
        "__builtins__": builtins,
        "RunContext": RunContext,
        "httpx": httpx,
        "logger": logger,
    }
    reply: dict[str, Any] | bytes
    try:
        code = compile(str(run["code"]), FILENAME, "exec", dont_inherit=True)
        exec(code, namespace)
        entry = namespace.get(str(run["entrypoint"]))
        if not callable(entry):
            raise NameError(f"the code defines no function named {run['entrypoint']!r}")
        value = entry(ctx, **dict(run.get("arguments") or {}))
        if inspect.isawaitable(value):
            value = await value
        reply = _result(value, max_output)
    except MemoryError:
        reply = {"t": "error", "kind": "memory", "detail": "MemoryError", "hint": "rlimit-as"}
    except BaseException as exc:
        try:
            reply = {
                "t": "error",
                "kind": "exception",
                "detail": describe(exc),
                "hint": classify(exc),
            }
        except MemoryError:
            reply = {"t": "error", "kind": "memory", "detail": "MemoryError", "hint": "rlimit-as"}
    finally:
        stdout.flush()
        stderr.flush()
    if isinstance(reply, bytes):
        channel.send_raw(reply)
    else:
        channel.send(reply)


def _result(value: Any, max_output: int) -> dict[str, Any] | bytes:
    def invalid(why: str) -> dict[str, Any]:
        return {"t": "error", "kind": "invalid_output", "detail": why}

    if not isinstance(value, dict):
        return invalid(f"the function returned {type(value).__name__}, not a dict")
    if _too_big(value, max_output):
        return invalid(f"the result is larger than {max_output} bytes")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        data = text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        return invalid(f"the result is not JSON: {describe(exc)}")
    if len(data) > max_output:
        return invalid(f"the result is {len(data)} bytes; the limit is {max_output}")
    return b'{"t":"result","value":' + data + b"}"


# ---------------------------------------------------------------------------------- seccomp


def load_seccomp_module(path: str | None) -> Any:
    if not path:
        return None
    spec = importlib.util.spec_from_file_location("seccomp", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_filter(sc: Any, policy: dict[str, Any], pid: int) -> Any:
    ops = {"eq": sc.EQ, "ne": sc.NE, "masked_eq": sc.MASKED_EQ}
    filt = sc.SyscallFilter(sc.ERRNO(int(policy["default_errno"])))
    filt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    filt.set_attr(sc.Attr.CTL_TSYNC, 1)
    filt.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
    actions = {"allow": sc.ALLOW, "kill": sc.KILL_PROCESS, "enosys": sc.ERRNO(errno.ENOSYS)}
    for action, name, arg_rules in policy["rules"]:
        args = []
        for rule in arg_rules:
            value = pid if rule[2] == "$pid" else int(rule[2])
            if rule[1] == "masked_eq":
                args.append(sc.Arg(int(rule[0]), sc.MASKED_EQ, int(rule[3]), value))
            else:
                args.append(sc.Arg(int(rule[0]), ops[rule[1]], value))
        try:
            filt.add_rule(actions[action], name, *args)
        except (ValueError, RuntimeError, OSError):
            continue  # a syscall this libseccomp does not know: the default (EPERM) applies
    return filt


# ----------------------------------------------------------------------------------- zygote

WARMUP_CODE = '''
import json, re, math, datetime, random, hashlib, base64, uuid, urllib.parse

async def warm_up(ctx: RunContext, p: str, n: int = 1) -> dict:
    """Exercise what a typical function uses, before forking."""
    logger.info("warming up %s", p)
    print("warm", n, ctx.call.call_sid, ctx.variables)
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.get("https://warmup.invalid/x", params={"q": p, "days": n})
        data = response.json()
        if response.status_code != 200:
            raise httpx.RequestError("unexpected")
    second = await ctx.http.post("https://warmup.invalid/y", json={"a": [1, 2.5, None]})
    third = httpx.get("https://warmup.invalid/z")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        logger.exception("handled: %s", exc)
    return {"status": "success", "data": data, "codes": [second.status_code, third.status_code]}
'''


def warm_up() -> None:
    run = {
        "code": WARMUP_CODE,
        "entrypoint": "warm_up",
        "arguments": {"p": "x", "n": 2},
        "context": {"variables": {"k": "v"}, "call": {"call_sid": "CA0"}},
        "limits": {"max_output_bytes": 1 << 20, "max_log_lines": 200},
    }
    saved = sys.stdout, sys.stderr
    channel = WarmupChannel()
    try:
        for _ in range(2):
            asyncio.run(invoke(channel, run))
    finally:
        sys.stdout, sys.stderr = saved
    result = channel.sent[-1]
    if result.get("t") != "result":
        raise RuntimeError(f"warm-up failed: {result}")
    global _channel
    _channel = None
    json.loads('{"a": [1, 2.0, "x", null, true]}')


class Zygote:
    def __init__(self, ctrl: socket.socket, init: dict[str, Any]) -> None:
        self.ctrl = ctrl
        self.init = init
        self.seccomp = load_seccomp_module(init.get("seccomp_module"))
        self.policy: dict[str, Any] | None = init.get("seccomp") if self.seccomp else None
        self.child_limits: dict[str, int] = dict(init.get("child_limits") or {})
        self.by_pidfd: dict[int, tuple[int, int]] = {}
        self.alive: dict[int, int] = {}  # child id -> pid
        self.next_id = 0
        self.poller = select.poll()

    def send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        if fds:
            socket.send_fds(self.ctrl, [encode(msg)], fds)
        else:
            self.ctrl.send(encode(msg))

    def serve(self) -> NoReturn:
        self.poller.register(self.ctrl.fileno(), select.POLLIN)
        self.send({"t": "hello", "pid": os.getpid(), "seccomp": self.seccomp is not None})
        while True:
            for fd, _event in self.poller.poll():
                if fd == self.ctrl.fileno():
                    self.on_control()
                else:
                    self.reap(fd)

    def on_control(self) -> None:
        try:
            data = self.ctrl.recv(CONTROL_MAX)
        except OSError:
            data = b""
        if not data:
            self.shutdown()
        msg = json.loads(data)
        kind = msg.get("t")
        if kind == "spawn":
            self.spawn()
        elif kind == "kill":
            pid = self.alive.get(int(msg.get("id", -1)))
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        elif kind == "exit":
            self.shutdown()

    def shutdown(self) -> NoReturn:
        for pid in self.alive.values():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        os._exit(0)

    def reap(self, pidfd: int) -> None:
        cid, pid = self.by_pidfd.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        _, status, usage = os.wait4(pid, 0)
        self.alive.pop(cid, None)
        self.send(
            {
                "t": "exit",
                "id": cid,
                "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "maxrss_kb": usage.ru_maxrss,
            }
        )

    def spawn(self) -> None:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        io_r, io_w = os.pipe()
        self.next_id += 1
        cid = self.next_id
        pid = os.fork()
        if pid == 0:
            code = CHILD_FAILED
            try:
                code = self.child(to_r, from_w, io_w)
            finally:
                os._exit(code)
        for fd in (to_r, from_w, io_w):
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.by_pidfd[pidfd] = (cid, pid)
        self.alive[cid] = pid
        self.poller.register(pidfd, select.POLLIN)
        try:
            self.send({"t": "ready", "id": cid}, [to_w, from_r, io_r])
        finally:
            for fd in (to_w, from_r, io_r):
                os.close(fd)

    # -- the child ----------------------------------------------------------------------

    def child(self, to_r: int, from_w: int, io_w: int) -> int:
        os.dup2(io_w, 1)
        os.dup2(io_w, 2)
        high_in = fcntl.fcntl(to_r, fcntl.F_DUPFD, 100)
        high_out = fcntl.fcntl(from_w, fcntl.F_DUPFD, 100)
        os.dup2(high_in, IN_FD)
        os.dup2(high_out, OUT_FD)
        os.closerange(OUT_FD + 1, 1 << 16)  # the control socket, the other children's pipes
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        random.seed()  # never share the zygote's random state between invocations
        loop = asyncio.new_event_loop()  # its wake-up socketpair must exist before the filter
        asyncio.set_event_loop(loop)
        filt = build_filter(self.seccomp, self.policy, os.getpid()) if self.policy else None
        run = read_frame_blocking(IN_FD)
        if run is None or run.get("t") != "run":
            return 0
        self.apply_limits(run.get("limits") or {})
        if filt is not None:
            filt.load()
        loop.run_until_complete(invoke(Channel(IN_FD, OUT_FD), run))
        return 0

    def apply_limits(self, limits: dict[str, Any]) -> None:
        as_bytes = int(limits["as_bytes"])
        cpu = max(1, int(limits["cpu_s"]))
        settings = {
            resource.RLIMIT_AS: as_bytes,
            resource.RLIMIT_FSIZE: 0,
            resource.RLIMIT_CORE: 0,
            resource.RLIMIT_MEMLOCK: 0,
            resource.RLIMIT_MSGQUEUE: 0,
            resource.RLIMIT_NOFILE: int(self.child_limits.get("nofile", 64)),
            resource.RLIMIT_NPROC: int(self.child_limits.get("nproc", 48)),
        }
        for which, value in settings.items():
            resource.setrlimit(which, (value, value))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        threading.stack_size(int(self.child_limits.get("thread_stack_bytes", 1 << 20)))


def main() -> None:
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    ctrl.setblocking(True)
    data = ctrl.recv(CONTROL_MAX)
    if not data:
        return
    init = json.loads(data)
    patch_httpx()
    warm_up()
    zygote = Zygote(ctrl, init)
    gc.collect()
    gc.freeze()  # fewer copy-on-write faults in the children
    zygote.serve()


if __name__ == "__main__":
    main()
