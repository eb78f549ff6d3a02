"""One invocation, supervised: the run message, the child's frames, egress, and the outcome.

The supervisor owns the wall clock (a timeout kills the whole worker), answers the child's HTTP
requests through the ``egress`` callback, bounds and validates everything the child sends, and
turns the child's exit (code, signal, CPU time, RSS, as reported by the zygote) into an
:class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from .. import common
from ..common import Egress, EgressCalls, ErrorKind, Outcome
from ..http_failure import with_engine_note
from .pool import ChildPipes, Worker
from .protocol import (
    Eof,
    FrameReader,
    PipeWriter,
    ProtocolError,
    StdioCollector,
    check_message,
    clean_text,
    encode_frame,
    is_json_value,
    layer_of,
)

__all__ = ["Egress", "ErrorKind", "Invocation", "Limits", "Outcome"]

MAX_HTTP_FRAME = 6 << 20  # a 4 MiB request body, base64, and headers
MAX_DETAIL = 600
MAX_LOG_MESSAGE = 4000
STDIO_LIMIT = 64 * 1024
EXIT_REPORT_TIMEOUT_S = 2.0
AS_SLACK_BYTES = 32 << 20
MAX_UNREAD_BYTES = 32 << 20
_SIGNAL_NAMES = {int(s): s.name for s in signal.Signals}


@dataclass(frozen=True)
class Limits(common.Limits):
    """Per-invocation limits. ``memory_mb`` is the address space the function may use on top of
    the warm interpreter (RLIMIT_AS = the zygote's address space + memory_mb + a small slack);
    ``cpu_s`` is its CPU time (RLIMIT_CPU, rounded up to whole seconds)."""

    _POSITIVE: ClassVar[tuple[str, ...]] = ("timeout_s", "cpu_s")

    timeout_s: float = 5.0
    cpu_s: float = 5.0


class Invocation:
    """One run: the child's pipes, its HTTP requests, its logs, and how it ended."""

    def __init__(
        self,
        worker: Worker,
        pipes: ChildPipes,
        limits: Limits,
        egress: Egress,
        *,
        weak_note: str,
        started: float,
    ) -> None:
        self.worker = worker
        self.pipes = pipes
        self.limits = limits
        self.weak_note = weak_note
        self.started = started
        self.loop = asyncio.get_running_loop()
        self.logs: list[dict[str, Any]] = []
        self.dropped_logs = 0
        self.calls = EgressCalls(
            egress,
            max_requests=limits.max_http_requests,
            deadline=time.monotonic() + limits.timeout_s,
            reply=self._reply,
        )
        self.worker_healthy = True
        self.child_done = False
        self.log_limit_noted = False
        self.function_lines = 0
        self.writer: PipeWriter | None = None
        self.reader: FrameReader | None = None
        self.stdio: StdioCollector | None = None
        self.as_bytes = worker.baseline_bytes + limits.memory_mb * (1 << 20) + AS_SLACK_BYTES
        self.cpu_limit = max(1, math.ceil(limits.cpu_s))
        self.ready_at = time.perf_counter()
        if weak_note:
            self._log("warning", f"This function ran {weak_note}", "sandbox", True)

    # -- main loop ---------------------------------------------------------------------

    async def execute(
        self, code: str, entrypoint: str, arguments: dict[str, Any], context: dict[str, Any]
    ) -> Outcome:
        max_frame = max(self.limits.max_output_bytes, MAX_HTTP_FRAME) + 4096
        self.reader = FrameReader(
            self.loop,
            self.pipes.from_child,
            max_frame=max_frame,
            max_total=4 * max_frame + (self.limits.max_log_lines + 8) * 8192,
            max_frames=self.limits.max_log_lines + 2 * self.limits.max_http_requests + 32,
        )
        self.stdio = StdioCollector(self.loop, self.pipes.stdio, STDIO_LIMIT)
        fd, self.pipes.to_child = self.pipes.to_child, -1
        self.writer = PipeWriter(self.loop, fd)
        self._send(
            {
                "t": "run",
                "code": code,
                "entrypoint": entrypoint,
                "arguments": arguments,
                "context": context,
                "limits": {
                    "as_bytes": self.as_bytes,
                    "cpu_s": self.cpu_limit,
                    "max_output_bytes": self.limits.max_output_bytes,
                    "max_log_lines": self.limits.max_log_lines,
                },
            }
        )
        deadline = self.loop.time() + self.limits.timeout_s
        outcome = await self._supervise(deadline)
        # Nothing of an invocation outlives it: the outcome is returned only once the child's
        # process (every thread of it) is gone, so code that sent a result and kept running
        # can never overlap the next invocation.
        await self._ensure_child_gone()
        return outcome

    async def _supervise(self, deadline: float) -> Outcome:
        assert self.reader is not None
        while True:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return self._wall_clock()
            queue = self.reader.queue
            if queue.empty():
                try:
                    # no task per frame (wait_for makes one): the frame is awaited directly
                    async with asyncio.timeout_at(deadline):
                        item = await queue.get()
                except TimeoutError:
                    return self._wall_clock()
            else:
                item = queue.get_nowait()
            if isinstance(item, ProtocolError):
                return self._protocol_violation(str(item))
            if isinstance(item, Eof):
                return await self._child_ended(deadline)
            try:
                outcome = self._handle(item)
            except Exception as exc:  # a frame no check foresaw: never raise out of run()
                outcome = self._protocol_violation(f"a malformed message ({type(exc).__name__})")
            if outcome is not None:
                return outcome

    async def _ensure_child_gone(self) -> None:
        """SIGKILL the child unless it already exited, and wait until every thread of it is
        gone: its pidfd turns readable (or the zygote reports it reaped). Neither within 2 s:
        the whole worker goes."""
        if not self.worker.alive:
            return
        if self.pipes.exited():
            return
        self._kill_child()
        exited = self.worker.exit_future(self.pipes.cid)
        # what said so first: the pidfd, the zygote's exit report, or the 2 s timer (None)
        first: asyncio.Future[str | None] = self.loop.create_future()

        def note(why: str | None) -> None:
            if not first.done():
                first.set_result(why)

        def on_report(fut: asyncio.Future[dict[str, Any] | None]) -> None:
            note("reaped" if fut.result() is not None else "worker died")

        pidfd = self.pipes.pidfd
        if pidfd >= 0:
            self.loop.add_reader(pidfd, note, "pidfd")
        exited.add_done_callback(on_report)
        timer = self.loop.call_later(EXIT_REPORT_TIMEOUT_S, note, None)
        try:
            why = await first
        finally:
            timer.cancel()
            exited.remove_done_callback(on_report)
            if pidfd >= 0:
                self.loop.remove_reader(pidfd)
        if why in ("pidfd", "reaped"):
            return
        if self.worker.alive:
            self.worker_healthy = False
            self.worker.kill()

    def _kill_child(self) -> None:
        """SIGKILL the child: through its pidfd, else through the zygote."""
        if not self.pipes.kill():
            self.worker.kill_child(self.pipes.cid)

    def _handle(self, msg: dict[str, Any]) -> Outcome | None:
        problem = check_message(msg)
        if problem is not None:
            return self._protocol_violation(problem)
        kind = msg["t"]
        if kind == "log":
            # always the function's line: check_message refused any other source
            self._log(msg["level"], clean_text(msg["message"], MAX_LOG_MESSAGE), msg["source"])
            return None
        if kind == "log_limit":
            if not self.log_limit_noted:
                self.log_limit_noted = True
                self._log("warning", "log limit reached: further lines dropped", "sandbox", True)
            return None
        if kind == "http":
            return self._http_request(msg)
        if kind == "result":
            return self._result(msg)
        return self._error(msg)

    # -- results -----------------------------------------------------------------------

    def _result(self, msg: dict[str, Any]) -> Outcome:
        value = msg.get("value")
        if not isinstance(value, dict) or not is_json_value(value):
            return self._finish_child(
                self._fail("invalid_output", "the result is not a JSON object", "protocol")
            )
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > self.limits.max_output_bytes:
            limit = self.limits.max_output_bytes
            return self._finish_child(
                self._fail(
                    "invalid_output",
                    f"the result is {size} bytes; the limit is {limit}",
                    "protocol",
                )
            )
        return self._finish_child(self._outcome(True, value, None, "", None))

    def _error(self, msg: dict[str, Any]) -> Outcome:
        kind = msg["kind"]
        detail = clean_text(msg.get("detail", ""), MAX_DETAIL)
        if kind == "memory":
            return self._finish_child(self._out_of_memory())
        if kind == "invalid_output":
            return self._finish_child(self._fail("invalid_output", detail, "protocol"))
        # an exception: the child reports facts (cause, errno); the supervisor picks the layer
        layer = layer_of(msg.get("cause"), msg.get("errno"), egress_denied=self.calls.denied)
        return self._finish_child(self._fail("exception", detail, layer))

    def _wall_clock(self) -> Outcome:
        # The child is killed (SIGKILL through its pidfd); execute() then waits until it is
        # gone, and kills the whole worker (its zygote, every child, its namespaces) if it is
        # not gone within 2 s. The tenant's other invocations in this worker go on.
        self._kill_child()
        return self._fail(
            "timeout",
            f"the function did not finish within {self.limits.timeout_s:g} s (wall clock)",
            "wall-clock",
        )

    def _protocol_violation(self, why: str) -> Outcome:
        return self._finish_child(
            self._fail("invalid_output", f"protocol violation: {why}", "protocol")
        )

    async def _child_ended(self, deadline: float) -> Outcome:
        """The child closed its pipe without a result: ask the zygote how it ended."""
        self.child_done = True
        info: dict[str, Any] | None = None
        wait = max(0.05, min(EXIT_REPORT_TIMEOUT_S, deadline - self.loop.time()))
        with contextlib.suppress(TimeoutError):
            info = await asyncio.wait_for(
                asyncio.shield(self.worker.exit_future(self.pipes.cid)), wait
            )
        if info is None:
            if not self.worker.alive:
                return self._fail("crashed", "the sandbox worker died", "process")
            self._kill_child()
            return self._fail(
                "crashed", "the function closed its channel without a result", "protocol"
            )
        sig, code = info["signal"], info["code"]
        cpu, rss = info["cpu_s"], info["maxrss_kb"] * 1024
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= self.cpu_limit - 0.05):
            return self._fail(
                "timeout",
                f"the function used more than {self.cpu_limit} s of CPU time",
                "rlimit-cpu",
            )
        if sig == signal.SIGSYS:
            return self._fail(
                "crashed",
                "the function made a system call the sandbox forbids (killed by seccomp)",
                "seccomp",
            )
        if sig is not None and rss >= 0.75 * self.limits.memory_mb * (1 << 20):
            return self._out_of_memory()
        if sig == signal.SIGXFSZ:
            return self._fail("crashed", "the function tried to write a file", "rlimit-fsize")
        if sig is not None:
            name = _SIGNAL_NAMES.get(sig, str(sig))
            return self._fail("crashed", f"the function's process died ({name})", None)
        return self._fail(
            "crashed",
            f"the function's process exited (code {code}) without returning a result",
            None,
        )

    def _finish_child(self, outcome: Outcome) -> Outcome:
        """The child answered: make sure it is gone (it exits by itself; this is a backstop)."""
        if self.worker.alive:
            self._kill_child()
        return outcome

    def _out_of_memory(self) -> Outcome:
        return self._fail(
            "memory", f"out of memory (limit {self.limits.memory_mb} MB)", "rlimit-as"
        )

    def _fail(self, error: ErrorKind, detail: str, stopped_by: str | None) -> Outcome:
        return self._outcome(False, None, error, detail, stopped_by)

    def _outcome(
        self, ok: bool, value: Any, error: ErrorKind | None, detail: str, stopped_by: str | None
    ) -> Outcome:
        self._collect_stdio()
        if self.dropped_logs:
            self.logs.append(
                {
                    "level": "warning",
                    "message": f"{self.dropped_logs} more log lines were dropped",
                    "time": round(time.time(), 3),
                    "source": "sandbox",
                }
            )
            self.dropped_logs = 0
        now = time.perf_counter()
        if not ok:  # a failure one of its requests explains: what the engine saw of it
            detail = with_engine_note(detail, self.calls.http, error)
        outcome = Outcome(
            ok=ok,
            value=value,
            error=error,
            detail=detail,
            logs=self.logs,
            http=self.calls.http,
            stopped_by=stopped_by,
            timings={
                "wait_ms": round((self.ready_at - self.started) * 1000, 3),
                "run_ms": round((now - self.ready_at) * 1000, 3),
                "total_ms": round((now - self.started) * 1000, 3),
            },
        )
        if self.weak_note:
            outcome.mark_weak()
        return outcome

    # -- logs --------------------------------------------------------------------------

    def _log(self, level: str, message: str, source: str, host_note: bool = False) -> None:
        """One log entry. The function's lines (``host_note`` false) are at most
        ``max_log_lines``; the supervisor's own notes (source ``sandbox``, at most three: weak
        isolation, the child's log limit, dropped lines) always get in."""
        if not host_note:
            if self.function_lines >= self.limits.max_log_lines:
                self.dropped_logs += 1
                return
            self.function_lines += 1
        self.logs.append(
            {"level": level, "message": message, "time": round(time.time(), 3), "source": source}
        )

    def _collect_stdio(self) -> None:
        if self.stdio is None:
            return
        self.stdio.drain()
        for line in self.stdio.lines():
            self._log("info", clean_text(line, MAX_LOG_MESSAGE), "stdio")
        self.stdio.data.clear()

    # -- egress ------------------------------------------------------------------------

    def _http_request(self, msg: dict[str, Any]) -> Outcome | None:
        # check_message bounded every number: the timeout is a float the callback can use
        timeout = msg.get("timeout")
        request = {**msg, "timeout": None if timeout is None else float(timeout)}
        try:
            within_limit = self.calls.submit(msg["id"], request)
        except (ProtocolError, ArithmeticError, TypeError, ValueError) as exc:
            why = str(exc) if isinstance(exc, ProtocolError) else type(exc).__name__
            return self._protocol_violation(f"a bad HTTP request ({why})")
        if within_limit:
            return None
        return self._finish_child(
            self._fail(
                "too_many_requests",
                f"the function made more than {self.limits.max_http_requests} HTTP requests",
                "request-limit",
            )
        )

    def _reply(self, rid: int, answer: dict[str, Any]) -> None:
        self._send({"t": "http_response", "id": rid, **answer})

    def _send(self, msg: dict[str, Any]) -> None:
        if self.writer is None or self.writer.is_closing():
            return
        if self.writer.get_write_buffer_size() > MAX_UNREAD_BYTES:
            return  # the child is not reading what it asked for: it gets nothing more
        self.writer.write(encode_frame(msg))

    # -- cleanup -----------------------------------------------------------------------

    def cleanup(self) -> None:
        if self.calls.http:
            self.worker.uses_http = True
        self.calls.cancel()
        if self.reader is not None:
            self.reader.stop()
        if self.stdio is not None:
            self.stdio.close()
        if self.writer is not None and not self.writer.is_closing():
            self.writer.abort()
        self.pipes.close()
        self.worker.forget(self.pipes.cid)
        self.worker.child_done()
