"""Does the Python sandbox work from this install? (for ``voicefn doctor``)

:func:`check` (or :func:`acheck` inside an event loop) probes the host (:func:`~.host.check_host`),
starts a real sandbox with one worker and runs one trivial function in it. The answer says what
the host provides, where the sandbox's packages come from, whether they had to be copied for the
sandbox uid (issue 13: a venv in a 0700 home folder, ``pip install --user``), and, when it does
not work, the path or requirement that failed and the fix.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ..common import Mode, check_mode
from .host import DEFAULT_BWRAP, DEFAULT_PYTHON, HostSupport, SandboxUnavailable
from .supervisor import PythonSandbox

__all__ = ["SandboxCheck", "acheck", "check"]

_PROBE_CODE = (
    "async def probe(ctx: RunContext) -> dict:\n"
    '    """Sandbox check."""\n'
    "    import httpx\n"
    "    return {'status': 'ok', 'httpx': httpx.__version__}\n"
)


@dataclass(frozen=True)
class SandboxCheck:
    """The result of :func:`check`. ``works`` is the one-word answer; ``problem`` names the path
    or requirement that failed and the fix (None when it works)."""

    works: bool
    mode: str
    host: HostSupport | None
    packages: tuple[tuple[str, str], ...] = ()
    #: the sandbox uid could not read this install, so its files were copied (and why)
    copied_because: str | None = None
    problem: str | None = None
    start_ms: float | None = None
    run_ms: float | None = None
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        lines = [f"Python sandbox ({self.mode}): {'works' if self.works else 'DOES NOT WORK'}"]
        if self.host is not None:
            lines += ["  " + line for line in self.host.describe().splitlines()]
        for name, path in self.packages:
            lines.append(f"  package {name}: {path}")
        if self.copied_because:
            lines.append(f"  files copied for the sandbox uid: {self.copied_because}")
        if self.start_ms is not None:
            lines.append(f"  worker start: {self.start_ms:.0f} ms")
        if self.run_ms is not None:
            lines.append(f"  one function call: {self.run_ms:.0f} ms")
        lines += [f"  note: {note}" for note in self.notes]
        if self.problem:
            lines.append(f"  problem: {self.problem}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "works": self.works,
            "mode": self.mode,
            "host_full": self.host.full if self.host is not None else False,
            "host_problems": list(self.host.problems) if self.host is not None else [],
            "packages": [list(p) for p in self.packages],
            "copied_because": self.copied_because,
            "problem": self.problem,
            "start_ms": self.start_ms,
            "run_ms": self.run_ms,
            "notes": list(self.notes),
        }


async def _no_egress(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no egress during the sandbox check"}


async def acheck(
    *,
    mode: Mode = "isolated",
    python: str = DEFAULT_PYTHON,
    bwrap: str = DEFAULT_BWRAP,
    uid: int | None = None,
) -> SandboxCheck:
    """Start a real sandbox (one worker) and run one function in it; never raises."""
    mode = check_mode(mode)
    sandbox = PythonSandbox(mode=mode, python=python, bwrap=bwrap, uid=uid, warm_workers=1)
    notes: list[str] = []
    if mode == "unsafe-process":
        notes.append("unsafe-process mode gives NO isolation between tenants")
    started = time.perf_counter()
    try:
        try:
            await sandbox.start()
        except SandboxUnavailable as exc:
            return SandboxCheck(False, mode, sandbox.host, problem=str(exc), notes=tuple(notes))
        start_ms = (time.perf_counter() - started) * 1000
        files = sandbox.files
        packages = files.packages if files is not None else ()
        copied = files.reason if files is not None else None
        t0 = time.perf_counter()
        outcome = await sandbox.run(_PROBE_CODE, "probe", {}, {}, egress=_no_egress)
        run_ms = (time.perf_counter() - t0) * 1000
        works = outcome.ok and (outcome.value or {}).get("status") == "ok"
        return SandboxCheck(
            works,
            mode,
            sandbox.host,
            packages,
            copied,
            None if works else f"a test function failed: {outcome.error}: {outcome.detail}",
            start_ms,
            run_ms,
            tuple(notes),
        )
    finally:
        await sandbox.aclose()


def check(
    *,
    mode: Mode = "isolated",
    python: str = DEFAULT_PYTHON,
    bwrap: str = DEFAULT_BWRAP,
    uid: int | None = None,
) -> SandboxCheck:
    """:func:`acheck` from synchronous code (the CLI); never raises. Takes 0.2-2 s."""
    return asyncio.run(acheck(mode=mode, python=python, bwrap=bwrap, uid=uid))
