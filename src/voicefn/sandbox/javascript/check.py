"""Does the JavaScript sandbox work from this install? (for ``voicefn doctor``)

:func:`check` (or :func:`acheck` inside an event loop) starts a real :class:`JavaScriptSandbox`
and runs one trivial function that uses the vendored libraries. The answer says what the host
provides (Deno and its version, bubblewrap, the uid the sandbox runs as, which layers bound
memory and CPU), where the bound files come from (the install, or the verified root-owned copy
made because the sandbox uid cannot read the install -- issue 13), and, when it does not work,
the path or requirement that failed and the fix. It never raises.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from ..common import Mode, SandboxUnavailable, check_mode
from ._host import DEFAULT_BWRAP, SANDBOX_UID
from .supervisor import JavaScriptSandbox

__all__ = ["JavaScriptSandboxCheck", "acheck", "check"]

_PROBE = (
    "async function probe(data) {"
    " return {sum: _.sum([data.x, 1]), year: moment.utc(0).year(), axios: typeof axios.get} }"
)


@dataclass(frozen=True)
class JavaScriptSandboxCheck:
    """The result of :func:`check`. ``works`` is the one-word answer; ``problem`` names the path
    or requirement that failed and the fix (None when it works)."""

    works: bool
    mode: str
    deno: str | None = None
    deno_version: str | None = None
    bwrap: str | None = None
    sandbox_uid: int | None = None
    memory_layer: str | None = None
    cpu_layer: str | None = None
    #: the files bubblewrap binds: host.js's folder, or the staged copy
    files_from: str | None = None
    #: why a staged copy is used (the sandbox uid cannot read the install); None: in place
    copied_because: str | None = None
    problem: str | None = None
    start_ms: float | None = None
    run_ms: float | None = None
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        lines = [f"JavaScript sandbox ({self.mode}): {'works' if self.works else 'DOES NOT WORK'}"]
        if self.deno:
            lines.append(f"  deno: {self.deno} ({self.deno_version or 'version unknown'})")
        if self.bwrap and self.mode == "isolated":
            lines.append(f"  bubblewrap: {self.bwrap}")
        if self.sandbox_uid is not None:
            lines.append(f"  runs as uid {self.sandbox_uid}")
        if self.memory_layer:
            lines.append(f"  memory bounded by: {self.memory_layer} (+ v8-heap)")
        if self.cpu_layer:
            lines.append(f"  CPU bounded by: {self.cpu_layer} (+ cpu-after-job recycling)")
        if self.files_from:
            lines.append(f"  sandbox files from: {self.files_from}")
        if self.copied_because:
            lines.append(f"  files copied for the sandbox uid: {self.copied_because}")
        if self.start_ms is not None:
            lines.append(f"  start: {self.start_ms:.0f} ms")
        if self.run_ms is not None:
            lines.append(f"  one function call (cold tenant process): {self.run_ms:.0f} ms")
        lines += [f"  note: {note}" for note in self.notes]
        if self.problem:
            lines.append(f"  problem: {self.problem}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "works": self.works,
            "mode": self.mode,
            "deno": self.deno,
            "deno_version": self.deno_version,
            "bwrap": self.bwrap,
            "sandbox_uid": self.sandbox_uid,
            "memory_layer": self.memory_layer,
            "cpu_layer": self.cpu_layer,
            "files_from": self.files_from,
            "copied_because": self.copied_because,
            "problem": self.problem,
            "start_ms": self.start_ms,
            "run_ms": self.run_ms,
            "notes": list(self.notes),
        }


async def _no_egress(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no egress during the sandbox check"}


def _deno_version(deno: str) -> str | None:
    try:
        done = subprocess.run(
            [deno, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "DENO_NO_UPDATE_CHECK": "1"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first = done.stdout.splitlines()[0] if done.stdout else ""
    return first.strip() or None


async def acheck(
    *, mode: Mode = "isolated", deno: str | None = None, bwrap: str = DEFAULT_BWRAP
) -> JavaScriptSandboxCheck:
    """Start a real sandbox and run one function in it; never raises."""
    mode = check_mode(mode)
    notes: list[str] = []
    if mode == "unsafe-process":
        notes.append("unsafe-process mode gives NO isolation between tenants")
    # one process, for the probe job: no spare process for new tenants, one pre-warmed Worker
    sandbox = JavaScriptSandbox(
        mode=mode, deno=deno, bwrap=bwrap, spare_processes=0, spare_workers=1
    )
    uid = SANDBOX_UID if os.geteuid() == 0 else None
    started = time.perf_counter()
    try:
        try:
            await sandbox.start()
        except SandboxUnavailable as exc:
            return JavaScriptSandboxCheck(
                False, mode, bwrap=bwrap, sandbox_uid=uid, problem=str(exc), notes=tuple(notes)
            )
        start_ms = (time.perf_counter() - started) * 1000
        config = sandbox._config
        assert config is not None
        files = config.files
        base = JavaScriptSandboxCheck(
            False,
            mode,
            deno=files.deno,
            deno_version=await asyncio.to_thread(_deno_version, files.deno),
            bwrap=bwrap,
            sandbox_uid=uid,
            memory_layer=sandbox.memory_layer,
            cpu_layer=sandbox.cpu_layer,
            files_from=str(files.staged) if files.staged else os.path.dirname(files.host_js),
            copied_because=files.reason,
            start_ms=start_ms,
            notes=tuple(notes),
        )
        t0 = time.perf_counter()
        outcome = await sandbox.run(_PROBE, "probe", {"x": 41}, egress=_no_egress, tenant="check")
        run_ms = (time.perf_counter() - t0) * 1000
        expected = {"sum": 42, "year": 1970, "axios": "function"}
        works = outcome.ok and outcome.value == expected
        problem = None
        if not works:
            problem = f"a test function failed: {outcome.error}: {outcome.detail}"
            if outcome.error == "unavailable":
                problem += " (the tenant process could not start; see the log for its stderr)"
        return JavaScriptSandboxCheck(
            **{
                **base.to_dict(),
                "works": works,
                "problem": problem,
                "run_ms": run_ms,
                "notes": tuple(notes),
            }
        )
    except Exception as exc:  # never raise: report it
        return JavaScriptSandboxCheck(
            False,
            mode,
            bwrap=bwrap,
            sandbox_uid=uid,
            problem=f"the check failed unexpectedly ({type(exc).__name__}: {exc})",
            notes=tuple(notes),
        )
    finally:
        await sandbox.aclose()


def check(
    *, mode: Mode = "isolated", deno: str | None = None, bwrap: str = DEFAULT_BWRAP
) -> JavaScriptSandboxCheck:
    """:func:`acheck` from synchronous code (the CLI); never raises. Takes 0.3-3 s (the first
    run as root with an install the sandbox uid cannot read copies Deno, ~100 MB, once)."""
    return asyncio.run(acheck(mode=mode, deno=deno, bwrap=bwrap))
