"""The Python sandbox's public face: :class:`PythonSandbox` starts the workers and runs calls.

:meth:`PythonSandbox.start` probes the host and starts the worker pool; :meth:`PythonSandbox.run`
takes a worker for the tenant and one of its pre-forked children, and hands the call to an
:class:`~.invocation.Invocation`, which supervises it and says how it ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from typing import Any

from ..common import ErrorKind, Mode, check_mode
from .files import Files, prepare_files
from .host import (
    DEFAULT_BWRAP,
    DEFAULT_PYTHON,
    SandboxUnavailable,
    check_host,
    package_paths,
    run_as,
)
from .invocation import Egress, Invocation, Limits, Outcome
from .policy import ChildLimits
from .pool import PEAK_HOLD_S, WORKER_FILE, WorkerConfig, WorkerError, WorkerPool
from .protocol import clean_text, is_json_value

log = logging.getLogger("voicefn.sandbox.python")

MAX_CODE_CHARS = 512 * 1024
TAKE_CHILD_TIMEOUT_S = 10.0
MAX_PREFORK = 32
#: After a burst of a tenant's calls (running and waiting at once), its zygote keeps that many
#: children forked ahead for PEAK_HOLD_S (pool.py), up to ``max_concurrency`` + this many by
#: default (never above MAX_PREFORK): a burst of 20 with the default 8 at once finds all 20.
BURST_EXTRA = 16
WEAK_NOTE = (
    "WEAKLY isolated (mode='unsafe-process'): NO isolation between tenants. No mount/pid/network "
    "namespaces; rlimits{seccomp} only. Every function runs as the same uid as every other "
    "tenant's: it can read other tenants' live memory and arguments (/proc/<pid>/mem, environ), "
    "kill or stop their calls, and read every file that uid can read. Use it only when all "
    "code comes from one trusted workspace."
)
_DEFAULT_LIMITS = Limits()


class PythonSandbox:
    """Runs customers' Python functions (hostile code) behind bubblewrap + seccomp + rlimits.

    ``mode="isolated"`` (the default) refuses to start unless :func:`check_host` is full.
    ``mode="unsafe-process"`` is an explicit operator choice: no namespaces, still rlimits and
    seccomp where available, and every :class:`Outcome` says it ran weakly isolated.
    """

    def __init__(
        self,
        *,
        mode: Mode = "isolated",
        warm_workers: int = 2,
        python: str = DEFAULT_PYTHON,
        uid: int | None = None,
        bwrap: str = DEFAULT_BWRAP,
        max_workers: int = 8,
        max_concurrency: int = 8,
        prefork: int = 2,
        max_prefork: int | None = None,
        burst_hold_s: float = PEAK_HOLD_S,
    ) -> None:
        self.mode: Mode = check_mode(mode)
        self.warm_workers = max(0, warm_workers)
        self.max_workers = max(1, max_workers)
        #: invocations of one tenant running at once (each its own child, limits each)
        self.max_concurrency = max(1, max_concurrency)
        #: children each worker keeps forked and waiting
        self.prefork = max(1, min(prefork, MAX_PREFORK))
        #: ... and up to this many after a burst that large (calls running and waiting at once),
        #: for 30 s: the next burst takes them without a fork on its path
        if max_prefork is None:
            max_prefork = self.max_concurrency + BURST_EXTRA
        self.max_prefork = max(self.prefork, min(max_prefork, MAX_PREFORK))
        self.burst_hold_s = max(0.0, float(burst_hold_s))
        self.python = python
        self.uid = uid
        self.bwrap = bwrap
        self.host: Any = None
        self._pool: WorkerPool | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._weak_note = ""
        self.files: Files | None = None

    def children_bound(self) -> int:
        """At most this many processes in one worker besides the running function's own
        threads: bubblewrap's init, the zygote, the tenant's running children
        (``max_concurrency``), and those forked ahead (for every invocation waiting for one --
        at most ``max_concurrency`` -- plus ``prefork``, or, between bursts, as many as the
        tenant's largest recent burst, at most ``max_prefork``)."""
        return 2 + 2 * self.max_concurrency + self.max_prefork

    @property
    def started(self) -> bool:
        return self._pool is not None

    async def start(self) -> None:
        """Probe the host and start the warm workers. Raises :class:`SandboxUnavailable`."""
        async with self._start_lock:
            if self._pool is not None:
                return
            if self._closed:
                raise SandboxUnavailable("the sandbox was closed")
            host = await asyncio.to_thread(
                check_host, bwrap=self.bwrap, python=self.python, uid=self.uid
            )
            self.host = host
            if self.mode == "isolated" and not host.full:
                raise host.unavailable()
            if self.mode == "unsafe-process":
                if host.unprivileged_uid is None or host.unprivileged_uid == 0 or not host.linux:
                    raise SandboxUnavailable(
                        "mode='unsafe-process' still needs Linux and an unprivileged uid to run "
                        "as: " + "; ".join(host.problems)
                    )
                self._weak_note = WEAK_NOTE.format(
                    seccomp=" + seccomp"
                    if host.seccomp
                    else " (no seccomp: python3-seccomp missing)"
                )
                log.warning("Python sandbox runs %s", self._weak_note)
            try:
                packages = await asyncio.to_thread(package_paths)
            except ImportError as exc:
                raise SandboxUnavailable(f"a package the sandbox needs is missing: {exc}") from None
            who = run_as(host.unprivileged_uid)
            files = await asyncio.to_thread(
                prepare_files,
                packages,
                WORKER_FILE,
                python=self.python,
                uid=host.unprivileged_uid,
                gid=who.group if who.group is not None else os.getgid(),
            )
            if files.staged is not None:
                log.info(
                    "Python sandbox: %s; using a copy of its files in %s",
                    files.reason,
                    files.staged,
                )
            config = WorkerConfig(
                mode=self.mode,
                bwrap=self.bwrap,
                python=self.python,
                uid=host.unprivileged_uid,
                packages=files.packages,
                seccomp_module=host.seccomp_module,
                worker_file=files.worker_file,
                prefork=self.prefork,
                max_prefork=self.max_prefork,
                peak_hold_s=self.burst_hold_s,
                # RLIMIT_NPROC counts every task of the sandbox uid in the worker's namespace:
                # the tenant's other running and waiting children too, so they get room here
                child_limits=ChildLimits(nproc=ChildLimits.nproc + self.children_bound()),
            )
            pool = WorkerPool(
                config,
                warm=self.warm_workers,
                max_workers=self.max_workers,
                max_concurrency=self.max_concurrency,
            )
            try:
                await pool.start()
            except WorkerError as exc:
                await pool.aclose()
                files.remove()
                raise SandboxUnavailable(f"the sandbox worker could not start: {exc}") from None
            self._pool = pool
            self.files = files

    async def aclose(self) -> None:
        self._closed = True
        async with self._start_lock:
            if self._pool is not None:
                await self._pool.aclose()
                self._pool = None
            if self.files is not None:
                self.files.remove()

    async def __aenter__(self) -> PythonSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def stats(self) -> dict[str, int]:
        return self._pool.stats() if self._pool is not None else {}

    async def run(
        self,
        code: str,
        entrypoint: str,
        arguments: dict[str, Any],
        context: dict[str, Any],
        *,
        egress: Egress,
        limits: Limits = _DEFAULT_LIMITS,
        tenant: str | None = None,
    ) -> Outcome:
        """Run ``await entrypoint(ctx, **arguments)`` from ``code`` once, in a fresh child.

        ``tenant`` names whose workers may run it (workers are never shared between tenants);
        the caller should derive it from the workspace/agent/function identity. Without it the
        tenant is the code itself (a hash of ``entrypoint`` and ``code``), never a shared
        default."""
        started = time.perf_counter()
        if not isinstance(code, str) or not isinstance(entrypoint, str):
            raise TypeError("code and entrypoint must be str")
        if not isinstance(arguments, dict) or not isinstance(context, dict):
            raise TypeError("arguments and context must be dicts")
        if not is_json_value(arguments) or not is_json_value(context):
            raise TypeError("arguments and context must be JSON values")
        if tenant is None:
            digest = hashlib.sha256(f"{entrypoint}\0{code}".encode("utf-8", "replace"))
            tenant = "code:" + digest.hexdigest()[:32]
        elif not isinstance(tenant, str) or not tenant:
            raise TypeError("tenant must be a non-empty str")
        if len(code) > MAX_CODE_CHARS:
            return self._failure(
                "invalid_output", f"the code is longer than {MAX_CODE_CHARS} characters", started
            )
        try:
            await self.start()
        except SandboxUnavailable as exc:
            return self._failure("unavailable", str(exc), started)
        pool = self._pool
        if pool is None:
            return self._failure("unavailable", "the sandbox is closed", started)
        try:
            worker = await pool.acquire(tenant)
        except WorkerError as exc:
            return self._failure("unavailable", str(exc), started)
        cold_ms = worker.cold_start_ms
        worker.cold_start_ms = 0.0
        try:
            pipes = await worker.take_child(TAKE_CHILD_TIMEOUT_S)
        except (WorkerError, TimeoutError):
            pool.release(worker, healthy=False)
            return self._failure("unavailable", "the sandbox worker stopped", started)
        invocation = Invocation(
            worker, pipes, limits, egress, weak_note=self._weak_note, started=started
        )
        healthy = False
        try:
            outcome = await invocation.execute(code, entrypoint, arguments, context)
            healthy = invocation.worker_healthy
        finally:
            invocation.cleanup()
            pool.release(worker, healthy=healthy)
        if cold_ms:
            outcome.timings["cold_start_ms"] = round(cold_ms, 3)
        return outcome

    def _failure(self, error: ErrorKind, detail: str, started: float) -> Outcome:
        total = round((time.perf_counter() - started) * 1000, 3)
        outcome = Outcome(
            ok=False,
            value=None,
            error=error,
            detail=clean_text(detail, 2000),
            stopped_by=None,
            timings={"wait_ms": total, "run_ms": 0.0, "total_ms": total},
        )
        if self._weak_note:
            outcome.mark_weak()
        return outcome
