"""The JavaScript sandbox's public face: one warm Deno process per tenant, one Worker per job.

:meth:`JavaScriptSandbox.start` checks the host (:mod:`._launch`); :meth:`JavaScriptSandbox.run`
takes the tenant's :class:`~._process.TenantProcess` (started lazily, kept warm, least recently
used evicted past ``max_processes``, respawned in the background after it died), which runs the
job in a fresh Worker (up to ``PARALLEL_JOBS`` of a tenant's jobs at once, each in its own);
:class:`~._job.Job` handles the job's frames, egress calls and result.
See ``ISOLATION.md`` for the layers and what each stops.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import shutil
import time
from collections.abc import Awaitable
from typing import Any

from ..common import check_mode, clean_text, ms
from ._host import DEFAULT_BWRAP
from ._launch import LaunchConfig, prepare
from ._process import TenantProcess
from .api import Egress, ErrorKind, Limits, Mode, Outcome

__all__ = ["Egress", "ErrorKind", "JavaScriptSandbox", "Limits", "Mode", "Outcome"]

log = logging.getLogger("voicefn.sandbox.javascript")

MAX_CODE_CHARS = 512 * 1024
MAX_DATA_BYTES = 8 << 20
WEAK_NOTE = (
    "WEAKLY isolated (mode='unsafe-process'): Deno runs without bubblewrap namespaces, so there "
    "is NO isolation between tenants: all tenants' processes run as the same uid in the same "
    "namespaces, and code that gets past Deno's permissions (one V8 bug) can read another "
    "tenant's live memory through /proc/<pid>/mem, kill its calls, and see the host's files and "
    "network. Use it only for one trusted tenant (local development), never for a service "
    "that runs more than one workspace."
)

_DEFAULT_LIMITS = Limits()
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


def _refusal(code: str, entrypoint: str) -> str | None:
    """Why the job is refused before it reaches a process (None: it is not)."""
    if len(code) > MAX_CODE_CHARS:
        return f"the code is longer than {MAX_CODE_CHARS} characters"
    if not _IDENT.match(entrypoint) or entrypoint in _RESERVED:
        return f"the entrypoint {clean_text(entrypoint, 80)!r} is not a JavaScript identifier"
    return None


def _start_failure(exc: Exception) -> str:
    """What to tell the caller when a tenant process did not start (the log has the rest)."""
    text = str(exc)
    found = re.search(r"bwrap: Can't find source path [^;\n]*", text)
    if found:
        return (
            f"the sandbox process could not be started ({clean_text(found.group(0), 300)}). "
            "Fix: that path and every folder on the way must be readable by the sandbox uid; "
            "restart the sandbox (start() copies what it cannot read) or install voicefn in a "
            "world-readable folder"
        )
    if "Node built-in modules" in text:
        return f"the sandbox process could not be started: {clean_text(text, 400)}"
    return "the sandbox process could not be started (see the log)"


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
        cpu_limit: float | None = 1.0,
        spare_workers: int = 3,
        spare_processes: int = 1,
        realms: bool = True,
    ) -> None:
        self.mode: Mode = check_mode(mode)
        if not isinstance(realms, bool):
            raise ValueError(f"realms must be True or False, not {realms!r}")
        #: the fast path: a job whose code fits runs in a fresh V8 context (realm) inside a
        #: Worker that stays, instead of a fresh Worker (ISOLATION.md); False: always a Worker
        self.realms = realms
        if isinstance(spare_workers, bool) or not isinstance(spare_workers, int):
            raise ValueError(f"spare_workers must be an int, not {spare_workers!r}")
        #: Workers each tenant process keeps pre-warmed, libraries evaluated (1-8): back-to-back
        #: jobs take them without waiting; each is used by one job only
        self.spare_workers = min(max(spare_workers, 1), 8)
        #: processes started ahead for new tenants (default memory_mb): a new tenant's first
        #: job adopts one that has run nothing yet instead of waiting for a cold start
        self.spare_processes = max(0, spare_processes)
        self._spare_procs: list[TenantProcess] = []
        if cpu_limit is not None and (
            isinstance(cpu_limit, bool)
            or not isinstance(cpu_limit, int | float)
            or not 0.01 <= cpu_limit <= 1024
        ):
            raise ValueError(f"cpu_limit must be a number of cores (0.01-1024), not {cpu_limit!r}")
        self.cpu_limit = cpu_limit
        self._deno_arg = deno
        self._bwrap = bwrap
        self.max_processes = max(1, max_processes)
        self._config: LaunchConfig | None = None
        self._processes: collections.OrderedDict[tuple[str, int], TenantProcess] = (
            collections.OrderedDict()
        )
        self._start_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def memory_layer(self) -> str:
        """What enforces the memory limit of a tenant process: cgroup-memory or rss-watchdog
        (each on top of V8's per-isolate heap limit)."""
        cgroups = self._config.cgroups if self._config is not None else None
        return "cgroup-memory" if cgroups is not None and cgroups.memory else "rss-watchdog"

    @property
    def cpu_layer(self) -> str:
        """What bounds a tenant process's CPU: cgroup-cpu (a CFS quota of ``cpu_limit`` cores
        and equal shares per tenant) or nice (without a writable cpu cgroup). Either way, a
        process that keeps working after its job is recycled (cpu-after-job)."""
        cgroups = self._config.cgroups if self._config is not None else None
        return "cgroup-cpu" if cgroups is not None and cgroups.cpu else "nice"

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
            self._config = await prepare(
                self.mode,
                self._deno_arg,
                self._bwrap,
                self.cpu_limit,
                self.spare_workers,
                self.realms,
            )
            if self.mode != "isolated":
                log.warning("JavaScript sandbox runs %s", WEAK_NOTE)
            if self._config.files.staged is not None:
                log.info(
                    "the sandbox uid cannot read voicefn's install; using the verified copy in %s",
                    self._config.files.staged,
                )
            if self.cpu_layer != "cgroup-cpu":
                log.info(
                    "no writable cgroup v1 cpu controller; tenant processes run with nice %d "
                    "and are recycled when they keep working after a job",
                    10,
                )
            if self.memory_layer != "cgroup-memory":
                log.info(
                    "no writable cgroup v1 memory controller; memory is limited by V8's heap "
                    "limit and an RSS watchdog"
                )
            self._fill_spare_processes()

    async def aclose(self) -> None:
        """Kill every tenant process and remove the sandbox's cgroups and sockets."""
        self._closed = True
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        processes = list(self._processes.values()) + self._spare_procs
        self._processes.clear()
        self._spare_procs.clear()
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
        limits: Limits = _DEFAULT_LIMITS,
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
        problem = _refusal(code, entrypoint)
        if problem is not None:
            refused = Outcome(False, None, "exception", problem)
            total = ms(time.perf_counter() - started)
            refused.timings = {"wait_ms": 0.0, "run_ms": 0.0, "total_ms": total}
            if self.mode != "isolated":
                refused.mark_weak()
            return refused

        process = await self._process(tenant, limits.memory_mb)
        async with process.slots:  # up to parallel_jobs of the tenant's jobs at once
            outcome: Outcome | None = None
            async with process.lock:
                if process.active == 0:
                    await process.recycle_if_busy()  # the last job's work must not run into this
                if not process.alive:
                    try:
                        await process.spawn()
                    except RuntimeError as exc:
                        log.warning(
                            "JavaScript sandbox process for %r failed to start: %s", tenant, exc
                        )
                        outcome = Outcome(False, None, "unavailable", _start_failure(exc))
                if outcome is None:
                    process.begin_job()
            ready = time.perf_counter()
            if outcome is None:
                outcome = await process.run(
                    code, entrypoint, data_json, limits, egress, self.realms
                )
            finished = time.perf_counter()
            died = not process.alive
        if self.mode != "isolated":
            outcome.mark_weak()
        outcome.timings = {
            "wait_ms": ms(ready - started),
            "run_ms": ms(finished - ready),
            "total_ms": ms(finished - started),
        }
        if died and outcome.error != "unavailable" and not self._closed:
            self._respawn_later(process)
        return outcome

    async def _process(self, tenant: str, memory_mb: int) -> TenantProcess:
        assert self._config is not None
        key = (tenant, memory_mb)
        process = self._processes.get(key)
        if process is not None:
            self._processes.move_to_end(key)
            return process
        process = self._adopt_spare(tenant, memory_mb) or TenantProcess(
            self._config, tenant, memory_mb
        )
        process.on_recycled = self._respawn_later
        self._processes[key] = process
        while len(self._processes) > self.max_processes:
            victim_key = next(
                (k for k, p in self._processes.items() if not p.busy and k != key), None
            )
            if victim_key is None:
                break
            victim = self._processes.pop(victim_key)
            self._spawn_background(self._close_process(victim))
        return process

    def _adopt_spare(self, tenant: str, memory_mb: int) -> TenantProcess | None:
        """A spare process (started ahead, no job run yet) for a new tenant, if one is up or
        starting (its job then waits for the start under the process's lock: sooner than a
        second process started beside it)."""
        for spare in self._spare_procs:
            if (
                spare.memory_mb == memory_mb
                and spare.config is self._config
                and (spare.alive or spare.lock.locked())
            ):
                self._spare_procs.remove(spare)
                spare.tenant = tenant
                self._fill_spare_processes()
                return spare
        return None

    def _fill_spare_processes(self) -> None:
        """Start spare processes (in the background) up to ``spare_processes``."""
        if self._config is None or self._closed:
            return
        while len(self._spare_procs) < self.spare_processes:
            spare = TenantProcess(self._config, "(spare)", Limits.memory_mb)
            self._spare_procs.append(spare)

            async def start(spare: TenantProcess = spare) -> None:
                async with spare.lock:
                    try:
                        await spare.spawn()
                    except RuntimeError as exc:
                        log.warning("a spare JavaScript sandbox process failed to start: %s", exc)
                        if spare in self._spare_procs:
                            self._spare_procs.remove(spare)

            self._spawn_background(start())

    @staticmethod
    async def _close_process(process: TenantProcess) -> None:
        async with process.lock:
            await process.kill()

    def _respawn_later(self, process: TenantProcess) -> None:
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

    def cold_startms(
        self, tenant: str = "default", memory_mb: int = Limits.memory_mb
    ) -> float | None:
        """How long the tenant's current process took to start (None if there is none)."""
        process = self._processes.get((tenant, memory_mb))
        return process.cold_start_ms if process is not None else None
