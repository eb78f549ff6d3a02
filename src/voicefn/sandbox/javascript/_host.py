"""What the JavaScript sandbox needs from the host: the Deno binary, bubblewrap, the shared
libraries Deno links against, a sandbox uid, and (where writable) cgroup v1 memory, pids and cpu
limits; the CPU time of a process tree."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from .api import unavailable

__all__ = [
    "DEFAULT_BWRAP",
    "PACKAGE_DIR",
    "SANDBOX_UID",
    "Cgroup",
    "CgroupParents",
    "find_deno",
    "library_binds",
    "tree_cpu_seconds",
    "tree_rss_bytes",
]

DEFAULT_BWRAP = "/usr/bin/bwrap"
SANDBOX_UID = 65534  # "nobody": used when the supervisor runs as root
PACKAGE_DIR = Path(__file__).resolve().parent


_FIND_LOCK = threading.Lock()


def find_deno(explicit: str | None) -> str:
    """The Deno binary: ``explicit``, else the PyPI ``deno`` package's, else ``deno`` on PATH."""
    if explicit is not None:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return os.path.abspath(explicit)
        raise unavailable(f"the Deno binary {explicit!r} does not exist or is not executable.")
    # One thread at a time: the package's find_deno_bin() reads sysconfig, whose first use is
    # not thread-safe (two sandboxes starting at once found no binary in one of them).
    with _FIND_LOCK, contextlib.suppress(ImportError, FileNotFoundError, AttributeError, TypeError):
        module = importlib.import_module("deno")
        with contextlib.suppress(FileNotFoundError):
            path = str(module.find_deno_bin())
            if os.access(path, os.X_OK):
                return path
        # The package imported from a virtualenv by another interpreter: <venv>/bin/deno.
        venv_bin = Path(str(module.__file__)).resolve().parents[4] / "bin" / "deno"
        if os.access(venv_bin, os.X_OK):
            return str(venv_bin)
    found = shutil.which("deno")
    if found:
        return found
    raise unavailable(
        "no Deno binary was found. Install it with `pip install 'deno>=2.0'` (the PyPI package "
        "ships the binary) or pass deno=/path/to/deno."
    )


_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def library_binds(binary: str) -> list[str]:
    """bubblewrap arguments that make ``binary``'s shared libraries (and nothing else) visible.

    Uses ``ldd``; if that is unavailable, falls back to binding the library directories.
    """
    paths: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["ldd", binary], capture_output=True, text=True, timeout=10, check=False, env={}
        )
        if done.returncode == 0:
            paths = [m.group(1) for m in _LDD_LINE.finditer(done.stdout)]
    args: list[str] = []
    if paths:
        for path in dict.fromkeys(paths):
            real = os.path.realpath(path)
            if os.path.isfile(real):
                args += ["--ro-bind", real, path]
        return args
    for path in ("/lib", "/lib64", "/usr/lib", "/usr/lib64"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants that are still there (children of every thread)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        try:
            tasks = os.listdir(f"/proc/{current}/task")
            found.append(current)
            for task in tasks:
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as fh:
                    todo.extend(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            continue
    return found


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (0 if gone)."""
    total = 0
    for current in _tree(pid):
        try:
            with open(f"/proc/{current}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total


# ------------------------------------------------------------------------------- CPU time

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads, exited ones included) of ``pid`` and its
    descendants, in seconds (0 if gone)."""
    ticks = 0
    for current in _tree(pid):
        try:
            with open(f"/proc/{current}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return ticks / _CLOCK_TICKS


#: Deno's tokio threads (the name is cut to 15 bytes): its blocking pool runs native work such
#: as WebCrypto's and node:crypto's key derivations, which outlive a terminated Worker.
_POOL_THREAD = "tokio-runtime-w"


def runnable_pool_threads(pid: int) -> int:
    """Deno pool threads of ``pid``'s tree that are running or waiting for a CPU (state R).

    An idle host's pool threads sleep. One that stays runnable poll after poll is native work a
    job left behind, whatever share of a CPU a busy machine gives it (CPU time alone grows too
    slowly to tell then)."""
    count = 0
    for current in _tree(pid):
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(
                    f"/proc/{current}/task/{task}/stat", encoding="ascii", errors="replace"
                ) as fh:
                    head, rest = fh.read().rsplit(")", 1)
            except (OSError, ValueError):
                continue
            if head.partition("(")[2] == _POOL_THREAD and rest.split()[:1] == ["R"]:
                count += 1
    return count


# ------------------------------------------------------------------------------- cgroups

_PREFIX = "voicefn-js-"
_counter = itertools.count(1)
CPU_PERIOD_US = 20_000  # short: a throttled tenant waits at most a few ms, not tens
# The quota a tenant left unused in earlier periods, up to one period's quota (the most the kernel
# takes: `cpu.cfs_burst_us` <= quota), may be spent on top of a period's own (Linux >= 5.14). A
# tenant idle before a burst of concurrent jobs (eight realm Workers, the host, V8's GC threads)
# then runs it on a second core for one period instead of being throttled in the middle of it:
# measured, 20 calls at once went from a p99 of 35-64 ms (rounds up to 85-307 ms) to 23-30 ms.
# Over any longer span a tenant still gets `cpu_limit` cores: a job that spins spends the burst
# once and is then held to its quota (tests/sandbox/javascript/test_js_escapes_work.py).


@dataclass(frozen=True)
class CgroupParents:
    """Writable cgroup v1 directories (the supervisor's own cgroups) to create children under:
    memory (limit), pids (limit) and cpu (CFS quota: at most ``cpu_limit`` cores per tenant,
    and equal ``cpu.shares`` so a tenant with many threads gets no more than one with one)."""

    memory: Path | None
    pids: Path | None
    cpu: Path | None = None

    @classmethod
    def detect(cls) -> CgroupParents | None:
        """The supervisor's own v1 memory, pids and cpu cgroups it may create children in.

        Needs root: with cgroup v1 an unprivileged supervisor cannot delegate. Without them the
        limits are V8's heap limit, the supervisor's RSS watchdog and ``nice`` instead.
        """
        if os.geteuid() != 0:
            return None
        own: dict[str, str] = {}
        try:
            with open("/proc/self/cgroup", encoding="ascii") as fh:
                for line in fh:
                    parts = line.rstrip("\n").split(":", 2)
                    if len(parts) == 3:
                        for controller in parts[1].split(","):
                            own[controller] = parts[2]
        except OSError:
            return None

        def parent(controller: str, probe: str) -> Path | None:
            if controller not in own:
                return None
            path = Path("/sys/fs/cgroup", controller) / own[controller].lstrip("/")
            if (path / probe).exists() and os.access(path, os.W_OK):
                return path
            return None

        memory = parent("memory", "memory.limit_in_bytes")
        cpu = parent("cpu", "cpu.cfs_quota_us")
        if memory is None and cpu is None:
            return None
        parents = cls(memory=memory, pids=parent("pids", "cgroup.procs"), cpu=cpu)
        parents.remove_stale()
        return parents

    def remove_stale(self) -> None:
        """Remove empty cgroups left by supervisors that died (their pid is in the name)."""
        for base in (self.memory, self.pids, self.cpu):
            if base is None:
                continue
            with contextlib.suppress(OSError):
                for entry in base.iterdir():
                    if not entry.name.startswith(_PREFIX):
                        continue
                    owner = entry.name[len(_PREFIX) :].split("-", 1)[0]
                    if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                        with contextlib.suppress(OSError):
                            entry.rmdir()

    def create(
        self, memory_bytes: int, pids_max: int, cpu_limit: float | None, owner_uid: int | None
    ) -> Cgroup:
        """One tenant process's cgroups; ``cpu_limit`` in cores (None: shares only)."""
        name = f"{_PREFIX}{os.getpid()}-{next(_counter)}"
        group = Cgroup()
        try:
            if self.memory is not None:
                group.memory = self.memory / name
                group.memory.mkdir()
                (group.memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
                for optional, value in (
                    ("memory.memsw.limit_in_bytes", str(memory_bytes)),
                    ("memory.swappiness", "0"),
                ):
                    with contextlib.suppress(OSError):
                        (group.memory / optional).write_text(value)
            if self.pids is not None:
                group.pids = self.pids / name
                group.pids.mkdir()
                (group.pids / "pids.max").write_text(str(pids_max))
            if self.cpu is not None:
                group.cpu = self.cpu / name
                group.cpu.mkdir()
                (group.cpu / "cpu.shares").write_text("1024")
                if cpu_limit is not None:
                    (group.cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                    quota = max(1000, round(cpu_limit * CPU_PERIOD_US))
                    (group.cpu / "cpu.cfs_quota_us").write_text(str(quota))
                    with contextlib.suppress(OSError):  # older kernels: no burst, quota only
                        (group.cpu / "cpu.cfs_burst_us").write_text(str(quota))
            if owner_uid is not None:
                for d in group.dirs:
                    os.chown(d / "cgroup.procs", owner_uid, -1)
        except OSError:
            group.remove()
            raise
        return group


class Cgroup:
    """One tenant process's cgroups (memory, pids and cpu, each where available)."""

    def __init__(self) -> None:
        self.memory: Path | None = None
        self.pids: Path | None = None
        self.cpu: Path | None = None

    @property
    def dirs(self) -> list[Path]:
        return [d for d in (self.memory, self.pids, self.cpu) if d is not None]

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_kills(self) -> int:
        """The kernel's count of OOM kills in the memory cgroup (-1 if unreadable)."""
        if self.memory is None:
            return -1
        try:
            text = (self.memory / "memory.oom_control").read_text()
        except OSError:
            return -1
        match = re.search(r"^oom_kill (\d+)$", text, re.MULTILINE)
        if match:
            return int(match.group(1))
        try:
            return int((self.memory / "memory.failcnt").read_text())
        except (OSError, ValueError):
            return -1

    def burst_us(self) -> int:
        """The unused quota the tenant may spend on top of a period's, in µs (0: none)."""
        if self.cpu is None:
            return 0
        try:
            return int((self.cpu / "cpu.cfs_burst_us").read_text())
        except (OSError, ValueError):
            return 0

    def throttled_s(self) -> float:
        """How long the CFS quota held the tenant back so far, in seconds (0 if unknown)."""
        if self.cpu is None:
            return 0.0
        try:
            text = (self.cpu / "cpu.stat").read_text()
        except OSError:
            return 0.0
        match = re.search(r"^throttled_time (\d+)$", text, re.MULTILINE)
        return int(match.group(1)) / 1e9 if match else 0.0

    def kill_all(self) -> None:
        for d in self.dirs:
            try:
                pids = (d / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> bool:
        """Remove the cgroups (they must be empty); True when all are gone."""
        gone = True
        for d in reversed(self.dirs):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                gone = False
        return gone
