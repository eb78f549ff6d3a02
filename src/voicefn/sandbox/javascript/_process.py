"""One tenant's Deno process: spawn it, run its jobs one at a time, learn why it died, kill it.

The process gets its own cgroup v1 memory/pids limit where the supervisor may create one, else
an RSS watchdog. The supervisor listens for its host on a fresh Unix socket, unlinked once the
host connected; stderr is kept as a bounded tail (not the protocol: Workers can write to it).
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
from pathlib import Path
from typing import Any

from ._host import Cgroup, tree_rss_bytes
from ._job import Job
from ._launch import TENANT_ENV, LaunchConfig, run_as, tenant_argv
from ._protocol import Eof, ProtocolError, clean_text, encode_frame, ms, read_frame
from .api import Egress, ErrorKind, Limits, Outcome

log = logging.getLogger("voicefn.sandbox.javascript")

STDERR_TAIL = 16 * 1024
START_TIMEOUT_S = 15.0
BACKSTOP_GRACE_S = 2.0  # past the deadline the host should have enforced: kill the process
EXIT_WAIT_S = 2.0
HEAP_OVERHEAD_MB = 192  # cgroup limit = memory_mb (a job's V8 heap) + the host, spare worker...
PIDS_MAX = 256
WATCHDOG_INTERVAL_S = 0.05
MAX_READY_FRAME = 1 << 20


class TenantProcess:
    """One tenant's Deno process (for one ``memory_mb``): spawn, run jobs one at a time, die."""

    def __init__(self, config: LaunchConfig, tenant: str, memory_mb: int) -> None:
        self.config = config
        self.tenant = tenant
        self.memory_mb = memory_mb
        self.memory_limit = (memory_mb + HEAP_OVERHEAD_MB) << 20  # bytes, the whole process
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
        self.socket_path: Path | None = None
        self.next_job = 0
        self.cold_start_ms: float | None = None

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
                self.cgroup = cfg.cgroups.create(self.memory_limit, PIDS_MAX, cfg.uid)
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
            try:
                conn, _ = await asyncio.wait_for(loop.sock_accept(listener), START_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError("the Deno process did not connect in time") from None
            self.reader, self.writer = await asyncio.open_unix_connection(sock=conn)
            frame = await asyncio.wait_for(self._read_frame(MAX_READY_FRAME), START_TIMEOUT_S)
            if frame.get("t") != "ready":
                raise RuntimeError(
                    f"the Deno process failed: {clean_text(frame.get('detail'), 300)}"
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
                await self.kill()
                return
            await asyncio.sleep(WATCHDOG_INTERVAL_S)

    # -- running -------------------------------------------------------------------------

    async def _read_frame(self, max_len: int) -> dict[str, Any]:
        assert self.reader is not None
        return await read_frame(self.reader, max_len)

    def send(self, msg: dict[str, Any]) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(encode_frame(msg))

    async def run(
        self, code: str, entrypoint: str, data_json: str, limits: Limits, egress: Egress
    ) -> Outcome:
        """Run one job in a fresh Worker; kill the process if it breaks the protocol or hangs."""
        self.next_job += 1
        job = Job(self.next_job, limits, egress, self.send)
        self.send(job.run_frame(code, entrypoint, data_json))
        backstop = job.deadline + BACKSTOP_GRACE_S
        try:
            while True:
                remaining = backstop - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                frame = await asyncio.wait_for(self._read_frame(job.max_frame), remaining)
                outcome = job.handle(frame)
                if outcome is not None:
                    return outcome
        except TimeoutError:
            await self.kill()
            return job.outcome(
                "timeout",
                f"the function did not finish within {limits.timeout_s:g} s and the sandbox "
                "process did not stop it; it was killed",
                "supervisor-kill",
            )
        except ProtocolError as exc:
            await self.kill()
            return job.outcome("crashed", f"protocol violation: {exc}")
        except Eof:
            return job.outcome(*await self._death())
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
        if oom_killed or self.watchdog_fired:
            layer = "cgroup-memory" if oom_killed else "rss-watchdog"
            return "memory", f"the function used too much memory (limit {limit})", layer
        if re.search(r"out of memory|heap limit", stderr, re.IGNORECASE):
            return "memory", f"the function used more than its {limit} heap", "v8-heap"
        code = proc.returncode if proc is not None else None
        return "crashed", f"the sandbox process exited unexpectedly (status {code})", None

    # -- killing -------------------------------------------------------------------------

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
