"""One tenant's Deno process: spawn it, run its jobs (several at once), learn why it died, kill it.

The process gets its own cgroup v1 memory/pids/cpu limits where the supervisor may create them,
else an RSS watchdog (and ``nice``). The supervisor listens for its host on a fresh Unix socket,
unlinked once the host connected; stderr is kept as a bounded tail for diagnosis only (never a
source of verdicts on its own: Workers can write to it).

A job's work must end with the job: the Worker is terminated, but native work it started (a
WebCrypto/``node:crypto`` key derivation in Deno's thread pool, say) goes on. So after each job
the supervisor watches the process's CPU time while it is idle (:meth:`TenantProcess.watch_idle`)
and recycles the process (kills it; the supervisor starts a fresh one) when it keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._host import Cgroup, runnable_pool_threads, tree_cpu_seconds, tree_rss_bytes
from ._job import Job
from ._launch import TENANT_ENV, LaunchConfig, run_as, tenant_argv
from ._modules import unknown_builtins
from ._protocol import Eof, ProtocolError, clean_text, encode_frame, ms, read_frame
from .api import Egress, ErrorKind, Limits, Outcome

log = logging.getLogger("voicefn.sandbox.javascript")

STDERR_TAIL = 16 * 1024
START_TIMEOUT_S = 15.0
BACKSTOP_GRACE_S = 2.0  # past the deadline the host should have enforced: kill the process
EXIT_WAIT_S = 2.0
# cgroup limit = memory_mb (a job's V8 heap) + this: the host (~53 MB RSS) and up to MAX_WORKERS
# (20) Workers, running and pre-warmed (~12 MB RSS each, measured: 77 MB with 2, 294 MB with 20;
# ~15 MB before axios and lodash were the minified builds), before what the jobs allocate.
HEAP_OVERHEAD_MB = 384
PIDS_MAX = 256
WATCHDOG_INTERVAL_S = 0.05
MAX_READY_FRAME = 1 << 20
# A tenant's calls run at once up to this many (the host allows 24); more wait in the
# supervisor's queue (`wait_ms`). A burst of 20 still finds 20 ready Workers (the pool holds up to
# MAX_WORKERS, running ones included): the queued calls take theirs as the first ones end, in
# milliseconds, and the cgroup cpu quota bounds their CPU together whatever runs at once. Kept at
# 8 for memory: the running jobs share the limit (memory_mb + HEAP_OVERHEAD_MB) with the host and
# the ready Workers, ~350 MB beside a full pool, ~45 MB a job at 8 (at 20 a burst of jobs holding a
# few MB of JSON each was killed whole as a memory bomb). A job that kills the process (a memory
# bomb) ends the others too.
PARALLEL_JOBS = 8
MIN_FRAME = 8 << 20  # the largest frame while no job runs (a job allows more: Job.max_frame)
_JOB_FRAMES = frozenset({"log", "fetch", "result"})
# After a job: the host terminates the Worker and refills its pool (~0.05-0.06 s of CPU a Worker;
# after a burst of jobs up to 20 Workers, one at a time: ~1.2 s, ~1.5 s on a busy machine, where
# 1.0 s recycled a healthy process). More than IDLE_CPU_BUDGET_S + IDLE_CPU_RATE x (seconds
# since the job ended) is work the job left behind.
IDLE_CPU_BUDGET_S = 2.0
IDLE_CPU_RATE = 0.3
IDLE_POLL_S = 0.2
IDLE_QUIET_POLLS = 5  # this many polls with (almost) no CPU: the process is idle, stop watching
# A Deno pool thread (native work: WebCrypto, node:crypto) runnable at this many polls in a row
# after the last job ended is work left behind, however little CPU a busy machine gives it.
POOL_BUSY_POLLS = 5
# V8's fatal errors (heap OOM) end the process with SIGTRAP (bwrap reports 128 + 5) or SIGABRT
_FATAL_STATUSES = frozenset({133, 134, -5, -6})


async def _accept(loop: asyncio.AbstractEventLoop, listener: socket.socket) -> socket.socket:
    """The host's connection, within START_TIMEOUT_S. Not ``wait_for``: on Python 3.11 a
    cancellation that lands as the accept completes drops the accepted socket unclosed."""
    accept = asyncio.ensure_future(loop.sock_accept(listener))
    try:
        done, _ = await asyncio.wait({accept}, timeout=START_TIMEOUT_S)
    except BaseException:
        if accept.done() and not accept.cancelled() and accept.exception() is None:
            accept.result()[0].close()
        accept.cancel()
        raise
    if not done:
        accept.cancel()
        raise RuntimeError("the Deno process did not connect in time")
    conn, _ = accept.result()
    return conn


class TenantProcess:
    """One tenant's Deno process (for one ``memory_mb``): spawn, run jobs (up to
    ``PARALLEL_JOBS`` at once, each in its own Worker), die."""

    def __init__(self, config: LaunchConfig, tenant: str, memory_mb: int) -> None:
        self.config = config
        self.tenant = tenant
        self.memory_mb = memory_mb
        self.memory_limit = (memory_mb + HEAP_OVERHEAD_MB) << 20  # bytes, the whole process
        #: held to check, spawn, recycle or kill the process, and while a job begins
        self.lock = asyncio.Lock()
        #: how many of the tenant's jobs may run at once (each in a Worker of its own)
        self.slots = asyncio.Semaphore(PARALLEL_JOBS)
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.cgroup: Cgroup | None = None
        self.oom_base = 0
        self.stderr_tail = bytearray()
        self.stderr_task: asyncio.Task[None] | None = None
        self.watchdog_task: asyncio.Task[None] | None = None
        self.watchdog_fired = False
        self.socket_path: Path | None = None
        self.next_job = 0
        self.cold_start_ms: float | None = None
        self.recycled = 0  # times the process was killed for work left behind by a job
        self.on_recycled: Callable[[TenantProcess], None] | None = None
        self.idle_task: asyncio.Task[None] | None = None
        self.idle_since: tuple[float, float] | None = None  # (monotonic, CPU s) at a job's end
        self.pool_busy_polls = 0  # idle polls in a row that found a Deno pool thread runnable
        #: a Worker the host terminated did not stop (a job that spins): replace the process as
        #: soon as no job runs in it
        self.stuck = False
        self.active = 0  # jobs begun and not yet ended (they may run at once)
        self.jobs: dict[int, tuple[Job, asyncio.Future[Outcome]]] = {}  # by id, this connection
        self.reader_task: asyncio.Task[None] | None = None
        self.abandoned: set[int] = set()  # ids of jobs whose caller cancelled (until their result)
        self._reading: asyncio.StreamReader | None = None  # the connection reader_task reads

    @property
    def busy(self) -> bool:
        """A job runs or begins (the process must not be evicted now)."""
        return self.lock.locked() or self.active > 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self.writer is not None

    # -- spawning ------------------------------------------------------------------------

    async def spawn(self) -> None:
        """Start the process and wait for the host's ``ready``. Raises RuntimeError on failure."""
        started = time.perf_counter()
        cfg = self.config
        self.stderr_tail.clear()
        self.watchdog_fired = False
        self.socket_path = cfg.workdir / f"{secrets.token_hex(12)}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.socket_path))
            listener.listen(1)
            listener.setblocking(False)
            if cfg.uid is not None:
                os.chown(self.socket_path, cfg.uid, -1)
            os.chmod(self.socket_path, 0o600)
            procs_files: list[str] = []
            if cfg.cgroups is not None:
                self.cgroup = cfg.cgroups.create(
                    self.memory_limit, PIDS_MAX, cfg.cpu_limit, cfg.uid
                )
                self.oom_base = max(0, self.cgroup.oom_kills())
                procs_files = self.cgroup.procs_files
            self.proc = await asyncio.create_subprocess_exec(
                *tenant_argv(cfg, self.memory_mb, self.socket_path, procs_files),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                cwd="/",
                env=TENANT_ENV,
                **run_as(cfg.uid),
            )
            self.stderr_task = asyncio.ensure_future(self._drain_stderr())
            if cfg.cgroups is None:
                self.watchdog_task = asyncio.ensure_future(self._watchdog())
            loop = asyncio.get_running_loop()
            conn = await _accept(loop, listener)
            try:
                self.reader, self.writer = await asyncio.open_unix_connection(sock=conn)
            except BaseException:
                conn.close()
                raise
            frame = await asyncio.wait_for(self._read_frame(MAX_READY_FRAME), START_TIMEOUT_S)
            if frame.get("t") != "ready":
                raise RuntimeError(
                    f"the Deno process failed: {clean_text(frame.get('detail'), 300)}"
                )
            builtins = frame.get("builtins")
            unknown = unknown_builtins(builtins) if isinstance(builtins, list) else ["?"]
            realm = frame.get("realm")
            if realm not in ("ok", "off"):
                log.warning(
                    "JavaScript sandbox: the realm fast path is off in this process, every job "
                    "takes a fresh Worker (%s)",
                    clean_text(realm, 300),
                )
            if unknown:
                raise RuntimeError(
                    "this Deno has Node built-in modules the sandbox neither allows nor blocks "
                    f"({clean_text(', '.join(unknown), 300)}); update voicefn or use the Deno "
                    "version it was released with"
                )
        except (OSError, RuntimeError, TimeoutError, Eof, ProtocolError) as exc:
            await self.kill()
            tail = clean_text(bytes(self.stderr_tail[-600:]).decode("utf-8", "replace"), 600)
            raise RuntimeError(f"{exc or type(exc).__name__}; stderr: {tail}") from exc
        except asyncio.CancelledError:
            await asyncio.shield(self.kill())
            raise
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        self.cold_start_ms = ms(time.perf_counter() - started)

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
        while proc.returncode is None:
            rss = await asyncio.to_thread(tree_rss_bytes, proc.pid)
            if rss > self.memory_limit:
                self.watchdog_fired = True
                # shielded: the job's own kill cancels this task, not the kill it started
                await asyncio.shield(self.kill())
                return
            await asyncio.sleep(WATCHDOG_INTERVAL_S)

    # -- running -------------------------------------------------------------------------

    async def _read_frame(self, max_len: int) -> dict[str, Any]:
        assert self.reader is not None
        return await read_frame(self.reader, max_len)

    def send(self, msg: dict[str, Any]) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(encode_frame(msg))

    def begin_job(self) -> None:
        """A job is about to run (called under :attr:`lock`, after :meth:`recycle_if_busy`):
        the process is no longer idle; :meth:`run` watches it again when its last job ends."""
        self.active += 1
        self.idle_since = None

    async def run(
        self,
        code: str,
        entrypoint: str,
        data_json: str,
        limits: Limits,
        egress: Egress,
        realm: bool = True,
    ) -> Outcome:
        """Run one job in a fresh Worker; kill the process if it breaks the protocol or hangs.
        Several jobs may run at once (each in its own Worker); one reader takes the process's
        frames and hands each to its job. Call :meth:`begin_job` first.

        Never raises for anything the process sends (or fails to send)."""
        self.next_job += 1
        job = Job(self.next_job, limits, egress, self.send)
        try:
            if not self.alive:
                return job.outcome("crashed", "the sandbox process exited before the job started")
            done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            self._running()[job.id] = (job, done)
            self.send(job.run_frame(code, entrypoint, data_json, realm))
            return await self._wait(job, done, job.deadline + BACKSTOP_GRACE_S)
        except asyncio.CancelledError:
            # The caller gave up: the host ends the job; its frames until then are dropped.
            if job.id in self.jobs:
                self.abandoned.add(job.id)
                self.send({"t": "stop", "id": job.id, "error": "crashed", "detail": "cancelled"})
            raise
        except Exception as exc:  # a bug on this side must not become the caller's exception
            log.exception("JavaScript sandbox job failed in the supervisor")
            await self.kill()
            return job.outcome("crashed", f"the sandbox supervisor failed ({type(exc).__name__})")
        finally:
            self.jobs.pop(job.id, None)
            await job.cancel_tasks()
            self.active -= 1
            if self.alive and self.active == 0:
                self._watch_idle()

    def _running(self) -> dict[int, tuple[Job, asyncio.Future[Outcome]]]:
        """The jobs of the current connection; starts its frame reader if it is not running
        (a reader that ended has killed its process; should one end without, a job must still
        not wait on it: a new reader reads the connection's end and gives the job its reason)."""
        task = self.reader_task
        if self.reader is not None and (
            self._reading is not self.reader or task is None or task.done()
        ):
            self._reading = self.reader
            self.jobs = {}
            self.abandoned = set()
            self.reader_task = asyncio.ensure_future(
                self._read_frames(self.reader, self.proc, self.jobs)
            )
        return self.jobs

    async def _wait(self, job: Job, done: asyncio.Future[Outcome], backstop: float) -> Outcome:
        remaining = backstop - time.monotonic()
        try:
            return await asyncio.wait_for(asyncio.shield(done), max(remaining, 0.0))
        except TimeoutError:
            if done.done():
                return done.result()
            await self.kill()
            return job.outcome(
                "timeout",
                f"the function did not finish within {job.limits.timeout_s:g} s and the "
                "sandbox process did not stop it; it was killed",
                "supervisor-kill",
            )

    async def _read_frames(
        self,
        reader: asyncio.StreamReader,
        proc: asyncio.subprocess.Process | None,
        jobs: dict[int, tuple[Job, asyncio.Future[Outcome]]],
    ) -> None:
        """Read one connection's frames until it ends; each goes to the job it names (a frame
        for no running job is a violation). When the connection ends, every job still waiting
        gets the reason: a protocol violation (the process is killed), or why it died."""
        abandoned = self.abandoned
        ending: tuple[ErrorKind, str, str | None]

        def largest() -> int:
            # asked when a frame's header arrived: a job begun while the reader waited counts
            return max((job.max_frame for job, _ in jobs.values()), default=MIN_FRAME)

        try:
            while True:
                frame = await read_frame(reader, largest)
                kind = frame.get("t")
                if kind == "pong":
                    continue
                if kind == "stuck":
                    if self.proc is proc:  # not a frame an earlier process left unread
                        self._stuck()
                    continue
                job_id = frame.get("id")
                known = job_id if type(job_id) is int else -1
                entry = jobs.get(known)
                if entry is None and known in abandoned and kind in _JOB_FRAMES:
                    if kind == "result":
                        abandoned.discard(known)
                    continue
                if entry is None:
                    raise ProtocolError(
                        "a frame for another job" if kind in _JOB_FRAMES else "an unknown frame"
                    )
                outcome = entry[0].handle(frame)
                if outcome is not None:
                    del jobs[entry[0].id]
                    if not entry[1].done():
                        entry[1].set_result(outcome)
        except ProtocolError as exc:
            ending = ("crashed", f"protocol violation: {exc}", None)
        except Eof:
            ending = ("crashed", "", None)  # why it died: below
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug on this side must not leave the jobs waiting
            log.exception("JavaScript sandbox frame reader failed")
            ending = ("crashed", f"the sandbox supervisor failed ({type(exc).__name__})", None)
        # Under the lock (spawns happen under it): only while this connection's process is still
        # the tenant's may it be killed or its death read; a process started since is not touched.
        # A connection that ended is a process that is done, jobs or not: it is killed and what
        # it held (socket, stderr task, cgroup, watchdog) released, so the next job spawns anew.
        async with self.lock:
            current = self.proc is proc
            if ending[1] == "" and current and jobs:
                ending = await self._death()
            elif current:
                await self.kill()
            if ending[1] == "":
                ending = ("crashed", "the sandbox process exited unexpectedly", None)
        for job, done in list(jobs.values()):
            if not done.done():
                done.set_result(job.outcome(*ending))
        jobs.clear()

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
        if oom_killed or self.watchdog_fired:
            layer = "cgroup-memory" if oom_killed else "rss-watchdog"
            return "memory", f"the function used too much memory (limit {limit})", layer
        code = proc.returncode if proc is not None else None
        # The stderr text alone could be the function's (Workers can write to stderr): only a
        # process that V8 ended with a fatal signal counts as a heap overflow.
        if code in _FATAL_STATUSES and re.search(
            r"Fatal JavaScript out of memory|Reached heap limit", stderr
        ):
            return "memory", f"the function used more than its {limit} heap", "v8-heap"
        return "crashed", f"the sandbox process exited unexpectedly (status {code})", None

    # -- work left behind by a job --------------------------------------------------------

    def _cpu_seconds(self) -> float:
        proc = self.proc
        return tree_cpu_seconds(proc.pid) if proc is not None else 0.0

    def _watch_idle(self) -> None:
        """Start watching the process's CPU time until the next job (or until it is idle)."""
        self.idle_since = (time.monotonic(), self._cpu_seconds())
        self.pool_busy_polls = 0
        if self.idle_task is None or self.idle_task.done():
            self.idle_task = asyncio.ensure_future(self._idle_watch())

    def left_work_behind(self) -> bool:
        """True when a job's native work goes on after the last job ended: one of Deno's pool
        threads stayed runnable for POOL_BUSY_POLLS polls in a row (what tells on a busy
        machine, where that work gets little CPU), or the process used more CPU than the host's
        own post-job work can explain."""
        if not self.alive:
            return False
        if self.stuck:
            return True
        if self.idle_since is None:
            return False
        if self.pool_busy_polls >= POOL_BUSY_POLLS:
            return True
        since, cpu0 = self.idle_since
        used = self._cpu_seconds() - cpu0
        return used > IDLE_CPU_BUDGET_S + IDLE_CPU_RATE * (time.monotonic() - since)

    async def recycle_if_busy(self) -> bool:
        """Before a job (under the lock): kill the process if the last job left work behind."""
        if not self.left_work_behind():
            return False
        await self._recycle()
        return True

    def _stuck(self) -> None:
        """The host terminated a Worker that did not stop (Deno cannot stop a thread that spins
        in JavaScript): the process is recycled once no job runs in it, by the idle watch (made
        sure to run here) or by ``recycle_if_busy`` before the tenant's next job."""
        self.stuck = True
        if self.active == 0 and (self.idle_task is None or self.idle_task.done()):
            self.idle_task = asyncio.ensure_future(self._idle_watch())

    async def _recycle(self) -> None:
        since = self.idle_since
        used = self._cpu_seconds() - since[1] if since else 0.0
        why = (
            "a Worker its job spun in did not stop when terminated"
            if self.stuck
            else f"{used:.2f} s CPU since the job ended, a pool thread runnable at "
            f"{self.pool_busy_polls} polls in a row"
        )
        log.warning(
            "JavaScript sandbox process of tenant %r kept working after its job (%s): "
            "recycled (layer cpu-after-job)",
            self.tenant,
            why,
        )
        await self.kill()
        self.recycled += 1  # counted once the process and its work are gone
        if self.on_recycled is not None:
            self.on_recycled(self)

    async def _idle_watch(self) -> None:
        quiet = 0
        last = self.idle_since[1] if self.idle_since else 0.0
        while self.alive and quiet < IDLE_QUIET_POLLS:
            await asyncio.sleep(IDLE_POLL_S)
            if self.lock.locked() or self.idle_since is None:
                return  # a job runs: it checks (recycle_if_busy) and watches again after
            proc = self.proc
            pool_busy = proc is not None and runnable_pool_threads(proc.pid) > 0
            self.pool_busy_polls = self.pool_busy_polls + 1 if pool_busy else 0
            if self.left_work_behind():
                async with self.lock:
                    if self.alive and self.left_work_behind():
                        await self._recycle()
                return
            now = self._cpu_seconds()
            quiet = quiet + 1 if now - last < 0.02 and not pool_busy else 0
            last = now

    # -- killing -------------------------------------------------------------------------

    async def kill(self) -> None:
        """Kill the process tree and release everything it held. Idempotent.

        Everything the process held is detached before the first ``await``: two kills may
        overlap (the RSS watchdog's and the job's), and the supervisor may spawn the next
        process while an earlier kill still waits for the old one's exit; each kill then
        releases only what it detached, never the new process's socket or tasks."""
        self.idle_since = None
        self.stuck = False
        proc = self.proc
        writer, self.writer, self.reader = self.writer, None, None
        stderr_task, self.stderr_task = self.stderr_task, None
        cgroup, self.cgroup = self.cgroup, None
        watchdog = self.watchdog_task
        if watchdog is not None and watchdog is not asyncio.current_task():
            self.watchdog_task = None
            watchdog.cancel()
        if proc is not None and proc.returncode is None:
            # Not proc.kill(): Popen.send_signal() polls first, which can reap the child behind
            # asyncio's child watcher. The process leads its own session (start_new_session).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if cgroup is not None:
            cgroup.kill_all()
        if writer is not None:
            writer.close()
        if proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), EXIT_WAIT_S)
        if writer is not None:
            # the socket is closed on the loop's next turn: wait for it, or it may outlive
            # the loop (an unclosed socket) when the sandbox shuts down right after
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        if stderr_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(stderr_task), 1.0)
            stderr_task.cancel()
        if cgroup is not None:
            for _ in range(50):
                if cgroup.remove():
                    break
                cgroup.kill_all()
                await asyncio.sleep(0.02)
            else:
                log.warning("could not remove cgroup %s", cgroup.dirs)
