"""Worker processes (one zygote each, inside bubblewrap) and the per-tenant pool of them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import select
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..common import Mode
from . import policy
from .files import describe_start_failure
from .host import run_as
from .protocol import ProtocolError, clean_text, decode_json

log = logging.getLogger("voicefn.sandbox.python")

WORKER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
START_TIMEOUT_S = 30.0
PEAK_HOLD_S = 30.0  # how long a burst's size keeps as many children forked ahead
#: Children forked ahead rehearse (warmup.rehearse) only for a tenant whose latest call came
#: after its worker had nothing running for this long. Calls back to back (measured: 0.1-0.5 ms
#: apart) would pay the rehearsal's CPU (~1.3 ms a child, more than the ~0.5 ms it saves the
#: call) on a busy machine, and a child still rehearsing when its call comes makes it wait.
REHEARSE_AFTER_IDLE_S = 0.01
_FALLBACK_BASELINE = 96 << 20
_ids = itertools.count(1)


class WorkerError(RuntimeError):
    """A worker could not start or died (``str`` is safe to show)."""


@dataclass(frozen=True)
class WorkerConfig:
    mode: Mode
    bwrap: str
    python: str
    uid: int | None
    packages: tuple[tuple[str, str], ...]
    seccomp_module: str | None  # host path of the python3-seccomp extension, when available
    child_limits: policy.ChildLimits = field(default_factory=policy.ChildLimits)
    worker_file: str = WORKER_FILE  # or its copy (see files.prepare_files)
    prefork: int = 2  # children each zygote keeps forked and waiting, beyond those asked for
    #: ... up to this many between bursts, for a tenant whose recent burst was that large
    #: (calls running and waiting at once: see Worker.replenish)
    max_prefork: int = 8
    rehearse: bool = True  # each waiting child runs our own trivial function once (warmup.py)
    batch: bool = True  # the zygote and its children run as SCHED_BATCH (see zygote.main)
    peak_hold_s: float = PEAK_HOLD_S  # how long a burst's size keeps its children forked ahead

    def argv_env(self, control_fd: int) -> tuple[list[str], dict[str, str]]:
        if self.mode == "isolated":
            argv = policy.bwrap_argv(
                bwrap=self.bwrap,
                python=self.python,
                worker_file=self.worker_file,
                packages=self.packages,
                seccomp_file=self.seccomp_module,
                control_fd=control_fd,
            )
            return argv, {}
        site_dirs = list(dict.fromkeys(os.path.dirname(path) for _, path in self.packages))
        return policy.python_argv(self.python, self.worker_file, control_fd), policy.worker_env(
            site_dirs
        )

    def init_message(self) -> dict[str, Any]:
        module = self.seccomp_module
        if module is not None and self.mode == "isolated":
            module = policy.sandbox_seccomp_path(module)
        return {
            "t": "init",
            "seccomp_module": module,
            "seccomp": policy.seccomp_policy() if module else None,
            "child_limits": self.child_limits.to_json(),
            "rehearse": self.rehearse,
            "batch": self.batch,
        }


@dataclass
class ChildPipes:
    """The supervisor's ends of one pre-forked child's pipes, and its pidfd (it owns and closes
    them)."""

    cid: int
    to_child: int
    from_child: int
    stdio: int
    pidfd: int = -1

    def kill(self) -> bool:
        """SIGKILL the child through its pidfd (no hop through the zygote). False when that was
        not possible: the caller asks the zygote instead."""
        if self.pidfd < 0:
            return False
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            return True  # it has exited already
        except OSError:
            return False
        return True

    def exited(self) -> bool:
        """Every thread of the child has exited (its pidfd is readable: the kernel says so only
        once the whole thread group is gone, memory torn down)."""
        if self.pidfd < 0:
            return False
        try:
            ready, _, _ = select.select([self.pidfd], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def close(self) -> None:
        for fd in (self.to_child, self.from_child, self.stdio, self.pidfd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.to_child = self.from_child = self.stdio = self.pidfd = -1


def _is_pidfd(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]"
    except OSError:
        return False


class Worker:
    """One sandboxed zygote process and its control socket."""

    def __init__(self, config: WorkerConfig) -> None:
        self.id = next(_ids)
        self.config = config
        self.tenant: str | None = None
        self.last_used = time.monotonic()
        self.cold_start_ms = 0.0
        self.baseline_bytes = _FALLBACK_BASELINE
        self.alive = False
        self.compiled_filter = False  # the zygote compiled the seccomp filter once (fast path)
        self.proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hello: asyncio.Future[dict[str, Any]] | None = None
        self._ready: asyncio.Queue[ChildPipes | None] = asyncio.Queue()
        self._requested = 0  # spawns asked of the zygote, not yet ready
        self._waiters = 0  # take_child() calls waiting for a child
        self._taken = 0  # children handed out whose invocation has not ended
        self.queued = 0  # the tenant's calls waiting for a free slot (max_concurrency; the pool)
        self._burst = 0  # the burst running now: most of the tenant's calls in at once
        self._peak = 0  # the largest burst that ended within peak_hold_s
        self._peak_at = 0.0  # when it ended
        self._trim: asyncio.TimerHandle | None = None  # closes a past burst's extra children
        self.forked = 0  # children the zygote forked for this worker (stats)
        self.uses_http = False  # the tenant's functions make HTTP requests: rehearse one too
        self.rehearse_after_idle_s = REHEARSE_AFTER_IDLE_S
        self._idle_since = time.monotonic()  # when the last running invocation ended
        self._paced = True  # the latest call came after an idle pause (see REHEARSE_AFTER_IDLE_S)
        self.active = 0  # invocations running in this worker now (the pool counts them)
        self.starting: asyncio.Future[None] | None = None  # its start(), while it runs
        self._exits: dict[int, asyncio.Future[dict[str, Any] | None]] = {}
        self._stderr = bytearray()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._hello = loop.create_future()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv, env = self.config.argv_env(child.fileno())
            who = run_as(self.config.uid)
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(child.fileno(),),
                start_new_session=True,
                cwd="/",
                env=env,
                user=who.user,
                group=who.group,
                extra_groups=who.extra_groups,
            )
        except OSError as exc:
            parent.close()
            raise WorkerError(f"could not start the sandbox worker ({exc.strerror})") from None
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self.alive = True
        self._sock = parent
        parent.setblocking(False)
        loop.add_reader(parent.fileno(), self._on_control)
        self._spawn_task(self._drain_stderr())
        try:
            parent.send(_encode(self.config.init_message()))
            hello = await asyncio.wait_for(self._hello, START_TIMEOUT_S)
        except (OSError, TimeoutError, WorkerError):
            why = await self._start_failure()
            raise WorkerError(f"the sandbox worker did not start: {why}") from None
        except BaseException:  # cancelled while starting
            self.kill()
            raise
        if self.config.seccomp_module is not None and hello.get("seccomp") is not True:
            self.kill()
            raise WorkerError("the sandbox worker could not load python3-seccomp")
        self.compiled_filter = hello.get("compiled_filter") is True
        self.baseline_bytes = self._measure_baseline(int(hello.get("pid", 0)))
        self.replenish()
        self.cold_start_ms = (time.perf_counter() - started) * 1000

    async def _start_failure(self) -> str:
        """What bubblewrap or the worker said before it died (waits for it briefly), as a
        sentence naming the path or requirement that failed and the fix."""
        if self.proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), 2.0)
        self.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait_closed(), 2.0)
        stderr = bytes(self._stderr[-4000:]).decode("utf-8", "replace")
        return clean_text(describe_start_failure(stderr, self.config.uid), 1200)

    def kill(self) -> None:
        """Kill the whole worker (its process group; bwrap's pid namespace takes the rest)."""
        was_alive = self.alive
        self.alive = False
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.proc.pid, signal.SIGKILL)
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        while not self._ready.empty():
            pipes = self._ready.get_nowait()
            if pipes is not None:
                pipes.close()
        self._ready.put_nowait(None)
        for fut in self._exits.values():
            if not fut.done():
                fut.set_result(None)
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(WorkerError("the sandbox worker exited"))
        if was_alive and self.proc is not None:
            self._spawn_task(self.proc.wait())

    async def close(self, grace_s: float = 1.0) -> None:
        """Stop politely (the zygote kills its children and exits on EOF), then kill."""
        if self.alive and self.proc is not None and self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace_s)
        self.kill()
        await self.wait_closed()

    @property
    def finished(self) -> bool:
        """Its process was reaped and nothing of it is still running here."""
        return not self.alive and not self._tasks

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- children ----------------------------------------------------------------------

    def replenish(self) -> None:
        """Ask the zygote for children until those ready or coming cover every waiting
        ``take_child`` plus ``prefork`` more -- and, between bursts (nothing running or
        waiting), as many as the tenant's largest burst that ended within ``peak_hold_s``
        (30 s; its calls running and waiting at once, at most ``max_prefork``), so the next
        burst finds every child it takes forked and rehearsed: none is forked while it runs
        unless it outgrows them. Once that burst is older, the children beyond ``prefork`` are
        closed (they exit unused)."""
        between_bursts = self._between_bursts()
        if between_bursts and self._burst:
            self._end_burst()
        ahead = self.config.prefork
        if between_bursts:
            if self._peak and self._burst_over():
                self._peak = 0
            # between bursts only: forking a burst's worth of children while it runs would
            # take CPU from it
            ahead = min(max(self.config.prefork, self._peak), max(self.config.max_prefork, 1))
        want = self._waiters + ahead
        have = self._ready.qsize() + self._requested
        if want > have and self._sock is not None:
            # children waited for now come first and go straight to their run; the rest are
            # forked ahead and rehearse while they wait (warmup.rehearse; one HTTP request
            # too for a tenant that makes them) -- unless its calls come back to back
            # (REHEARSE_AFTER_IDLE_S): measured, the rehearsal's CPU then costs those calls
            # more than the faults it saves them -- and not while a burst runs (its CPU would
            # be taken from the burst's calls)
            urgent = min(want - have, max(0, self._waiters - have))
            self._requested += want - have
            if urgent:
                self._control({"t": "spawn", "n": urgent, "ahead": False})
            if want - have - urgent:
                self._control(
                    {
                        "t": "spawn",
                        "n": want - have - urgent,
                        "ahead": self._paced and between_bursts,
                        "http": self.uses_http,
                    }
                )
        while between_bursts and self._requested == 0 and self._ready.qsize() > want:
            extra = self._ready.get_nowait()
            if extra is None:
                self._ready.put_nowait(None)
                break
            extra.kill()
            extra.close()

    @property
    def forked_ahead(self) -> int:
        """Children forked and waiting for an invocation."""
        return self._ready.qsize()

    @property
    def forking(self) -> int:
        """Children asked of the zygote, not ready yet."""
        return self._requested

    def _between_bursts(self) -> bool:
        """None of the tenant's calls is running, waiting for a child or for a slot."""
        return self._taken == 0 and self._waiters == 0 and self.queued == 0

    def _burst_over(self) -> bool:
        return time.monotonic() - self._peak_at > self.config.peak_hold_s

    def _end_burst(self) -> None:
        """The burst just ended: as large as the largest within ``peak_hold_s``, it is kept
        (its children forked ahead) for ``peak_hold_s`` from now."""
        size, self._burst = self._burst, 0
        if size < self._peak and not self._burst_over():
            return
        self._peak, self._peak_at = size, time.monotonic()
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        if size > self.config.prefork and self._loop is not None:
            # the children forked for it are closed then (if no call came by to trim them)
            self._trim = self._loop.call_later(self.config.peak_hold_s + 0.5, self.replenish)

    def note_demand(self) -> None:
        """A call came (it took a child, or waits for a slot): the burst is at least as large as
        the tenant's calls running and waiting now."""
        self._burst = max(self._burst, self._taken + self._waiters + self.queued)

    def child_done(self) -> None:
        """An invocation that took a child ended (its child is gone or being killed)."""
        self._taken = max(0, self._taken - 1)
        if self._taken == 0:
            self._idle_since = time.monotonic()

    def kill_child(self, cid: int) -> None:
        self._control({"t": "kill", "id": cid})

    async def take_child(self, wait_s: float) -> ChildPipes:
        if not self.alive:
            raise WorkerError("the sandbox worker is not running")
        if self._taken == 0 and self._waiters == 0:
            idle = time.monotonic() - self._idle_since
            self._paced = idle >= self.rehearse_after_idle_s
        if not self._ready.empty() and self._waiters == 0:
            pipes = self._ready.get_nowait()  # forked ahead: no task, no timer
        else:
            self._waiters += 1
            try:
                if self._ready.qsize() < self._waiters:
                    self.replenish()
                pipes = await asyncio.wait_for(self._ready.get(), wait_s)
            finally:
                self._waiters -= 1
        if pipes is None:
            self._ready.put_nowait(None)
            raise WorkerError("the sandbox worker exited")
        assert self._loop is not None
        self._exits[pipes.cid] = self._loop.create_future()
        self._taken += 1
        self.note_demand()
        return pipes

    def exit_future(self, cid: int) -> asyncio.Future[dict[str, Any] | None]:
        return self._exits[cid]

    def forget(self, cid: int) -> None:
        self._exits.pop(cid, None)

    # -- internals ---------------------------------------------------------------------

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(1 << 16):
            if len(self._stderr) < 16384:
                self._stderr += chunk[: 16384 - len(self._stderr)]

    def _control(self, msg: dict[str, Any]) -> None:
        if self._sock is None:
            return
        try:
            self._sock.send(_encode(msg))
        except OSError:
            self.kill()

    def _on_control(self) -> None:
        if self._sock is None:
            return
        try:
            data, fds, _flags, _addr = socket.recv_fds(self._sock, 1 << 16, 4)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        if not data:
            for fd in fds:
                os.close(fd)
            self.kill()
            return
        try:
            msg = decode_json(data)
            if not isinstance(msg, dict):
                raise ProtocolError("not an object")
            self._dispatch(msg, fds)
        except (ProtocolError, KeyError, TypeError, ValueError, ArithmeticError):
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            log.warning("sandbox worker %s sent a malformed control message; killed", self.id)
            self.kill()

    def _dispatch(self, msg: dict[str, Any], fds: list[int]) -> None:
        kind = msg.get("t")
        if kind == "ready":
            if len(fds) != 4 or not isinstance(msg.get("id"), int) or not _is_pidfd(fds[3]):
                raise ProtocolError("bad ready message")
            self._requested = max(0, self._requested - 1)
            self.forked += 1
            self._ready.put_nowait(ChildPipes(msg["id"], fds[0], fds[1], fds[2], fds[3]))
            if self._requested == 0 and self._peak and self._burst_over():
                self.replenish()  # a past burst's children arrived after its trim: trim now
            return
        for fd in fds:
            os.close(fd)
        if kind == "hello":
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(msg)
        elif kind == "exit":
            fut = self._exits.get(int(msg["id"]))
            if fut is not None and not fut.done():
                fut.set_result(_exit_info(msg))
        else:
            raise ProtocolError(f"unknown control message {kind!r}")

    def _measure_baseline(self, ns_pid: int) -> int:
        """The zygote's address space (VmSize), read from the host's /proc."""
        if self.proc is None:
            return _FALLBACK_BASELINE
        for pid in _descendants(self.proc.pid):
            status = _read(f"/proc/{pid}/status")
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            nspid = fields.get("NSpid", "").split()
            if not nspid or int(nspid[-1]) != ns_pid or "VmSize" not in fields:
                continue
            if self.config.mode == "isolated" and len(nspid) < 2:
                continue
            return int(fields["VmSize"].split()[0]) * 1024
        return _FALLBACK_BASELINE


def _exit_info(msg: dict[str, Any]) -> dict[str, Any]:
    def num(key: str) -> float:
        value = msg.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return 0.0
        if isinstance(value, float) and not math.isfinite(value):
            return 0.0
        return float(value) if 0 <= value <= 1e12 else 0.0

    def small(value: Any) -> int | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255
        return value if ok else None

    code, sig = msg.get("code"), msg.get("signal")
    return {
        "code": small(code),
        "signal": small(sig),
        "cpu_s": num("cpu_s"),
        "maxrss_kb": num("maxrss_kb"),
    }


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _descendants(root: int, depth: int = 4) -> list[int]:
    found: list[int] = [root]
    frontier = [root]
    for _ in range(depth):
        nxt: list[int] = []
        for pid in frontier:
            for tid in (
                os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []
            ):
                nxt += [int(c) for c in _read(f"/proc/{pid}/task/{tid}/children").split()]
        found += nxt
        frontier = nxt
    return found


def _encode(msg: dict[str, Any]) -> bytes:
    import json

    return json.dumps(msg, separators=(",", ":")).encode()


class WorkerPool:
    """Warm spare workers, plus one worker per tenant (never shared between tenants).

    A tenant's invocation runs in its worker (each invocation a fresh child of that worker's
    zygote, several at once), else in a warm spare that then belongs to the tenant (a new spare
    starts in the background), else in a worker started for it (a cold start). At most
    ``max_concurrency`` invocations of one tenant run at once; more wait for one to end. At
    ``max_workers``, the least recently used worker of another tenant with nothing running is
    stopped.
    """

    def __init__(
        self, config: WorkerConfig, *, warm: int, max_workers: int, max_concurrency: int = 8
    ) -> None:
        self.config = config
        self.warm = warm
        self.max_workers = max(max_workers, warm, 1)
        self.max_concurrency = max(1, max_concurrency)
        self._spares: list[tuple[Worker, asyncio.Task[None]]] = []
        self._tenants: dict[str, Worker] = {}
        self._running: dict[str, int] = {}  # tenant -> invocations running now
        self._all: set[Worker] = set()
        self._dying: set[Worker] = set()
        self._changed = asyncio.Event()
        self._closed = False

    async def start(self) -> None:
        self._replenish()
        results = await asyncio.gather(*(task for _, task in self._spares), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _replenish(self) -> None:
        while not self._closed and len(self._spares) < self.warm:
            # warm spares come first: a tenant's worker with nothing running is only defense
            # in depth (every invocation is a fresh child anyway), so the least recently used
            # one makes room
            if len(self._all) >= self.max_workers and not self._evict(None):
                break
            worker = Worker(self.config)
            self._all.add(worker)
            task = asyncio.ensure_future(worker.start())
            worker.starting = task
            self._spares.append((worker, task))

    async def acquire(self, tenant: str) -> Worker:
        """The tenant's worker, counted as running one more invocation (``release`` it)."""
        while True:
            if self._closed:
                raise WorkerError("the sandbox is closed")
            worker = self._tenants.get(tenant)
            if worker is not None and not worker.alive and worker.starting is None:
                self._forget_tenant(worker)
                self._discard(worker)
                worker = None
            if self._running.get(tenant, 0) >= self.max_concurrency:
                if worker is None:
                    await self._wait_changed()
                    continue
                # the call belongs to the tenant's burst (its worker forks ahead for it next
                # time)
                worker.queued += 1
                worker.note_demand()
                try:
                    await self._wait_changed()
                finally:
                    worker.queued -= 1
                continue
            if worker is None:
                if self._spares:
                    worker, _task = self._spares.pop(0)
                    self._replenish()
                elif len(self._all) < self.max_workers:
                    worker = Worker(self.config)
                    self._all.add(worker)
                    worker.starting = asyncio.ensure_future(worker.start())
                elif self._evict(tenant):
                    continue
                else:
                    await self._wait_changed()
                    continue
                worker.tenant = tenant
                self._tenants[tenant] = worker
            worker.active += 1
            self._running[tenant] = self._running.get(tenant, 0) + 1
            if worker.starting is not None:
                try:
                    # shielded: one caller giving up does not stop the start for the others
                    await asyncio.shield(worker.starting)
                except BaseException:
                    self.release(worker, healthy=False)
                    raise
                finally:
                    if worker.starting is not None and worker.starting.done():
                        worker.starting = None
            return worker

    async def _wait_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _forget_tenant(self, worker: Worker) -> None:
        if worker.tenant is not None and self._tenants.get(worker.tenant) is worker:
            del self._tenants[worker.tenant]

    def _evict(self, tenant: str | None) -> bool:
        candidates = [
            w
            for t, w in self._tenants.items()
            if t != tenant and w.active == 0 and w.starting is None
        ]
        if not candidates:
            return False
        victim = min(candidates, key=lambda w: w.last_used)
        self._forget_tenant(victim)
        victim.kill()
        self._discard(victim)
        return True

    def release(self, worker: Worker, *, healthy: bool) -> None:
        worker.last_used = time.monotonic()
        worker.active = max(0, worker.active - 1)
        tenant = worker.tenant
        if tenant is not None:
            left = self._running.get(tenant, 0) - 1
            if left > 0:
                self._running[tenant] = left
            else:
                self._running.pop(tenant, None)
        if not (healthy and worker.alive and not self._closed):
            self._forget_tenant(worker)
            worker.kill()
            self._discard(worker)
            self._replenish()
        else:
            worker.replenish()  # the zygote forks what the next invocations will take
        self._changed.set()

    def _discard(self, worker: Worker) -> None:
        self._all.discard(worker)
        # keep it until its process is reaped, so that aclose() can wait for it
        self._dying = {w for w in self._dying if not w.finished}
        self._dying.add(worker)
        self._changed.set()

    async def aclose(self) -> None:
        self._closed = True
        workers = list(self._all)
        for _, task in self._spares:
            task.cancel()
        await asyncio.gather(*(t for _, t in self._spares), return_exceptions=True)
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
        await asyncio.gather(*(w.wait_closed() for w in self._dying), return_exceptions=True)
        self._dying.clear()
        self._spares.clear()
        self._tenants.clear()
        self._running.clear()
        self._all.clear()
        self._changed.set()

    def stats(self) -> dict[str, int]:
        return {
            "workers": len(self._all),
            "spares": len(self._spares),
            "idle": sum(1 for w in self._tenants.values() if w.active == 0),
            "running": sum(self._running.values()),
            "started": sum(1 for w in self._all if w.alive),
            # started workers whose zygote compiled the seccomp filter once (children load it)
            "compiled_filter": sum(1 for w in self._all if w.alive and w.compiled_filter),
            # children forked ahead and waiting (prefork, or a recent burst's size)
            "forked_ahead": sum(w.forked_ahead for w in self._all if w.alive),
            # invocations waiting for one of their tenant's max_concurrency slots
            "queued": sum(w.queued for w in self._all),
            # children asked of the zygotes and not ready yet; children forked in all
            "forking": sum(w.forking for w in self._all if w.alive),
            "forked": sum(w.forked for w in self._all),
        }


def site_dirs(packages: Sequence[tuple[str, str]]) -> list[str]:
    return list(dict.fromkeys(os.path.dirname(path) for _, path in packages))
