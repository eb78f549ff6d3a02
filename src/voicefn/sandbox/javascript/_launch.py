"""How a tenant's Deno process is launched: the checks at start, and its command line.

:func:`prepare` checks the host once (the Deno binary, the sandbox's files -- staged where the
sandbox uid can read them (:mod:`._stage`) --, bubblewrap, and that bubblewrap really starts
Deno) and returns the :class:`LaunchConfig`; :func:`tenant_argv` is the command line of one
tenant's process: ``/bin/sh`` joining the cgroups and setting rlimits (``nice`` without a cpu
cgroup), then bubblewrap (isolated mode), then ``deno run host.js`` with the import map that
blocks Node built-ins (:mod:`._modules`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import clean_text
from ._host import SANDBOX_UID, CgroupParents, find_deno, library_binds
from ._modules import import_map_json
from ._stage import (
    HOST_JS,
    RUNTIME_DIR,
    VENDOR_DIR,
    WORKER_JS,
    SandboxFiles,
    reachable_by_others,
    sandbox_files,
)
from .api import Mode, unavailable

NICE = "/usr/bin/nice"
NICENESS = 10  # without a cpu cgroup: tenants yield to the engine and to each other
# The environment of the process (bubblewrap clears it again for Deno).
TENANT_ENV = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "DENO_DIR": "/nonexistent"}
_PROBE_TIMEOUT_S = 30


@dataclass(frozen=True)
class LaunchConfig:
    mode: Mode
    files: SandboxFiles
    bwrap: str
    lib_binds: tuple[str, ...]
    cgroups: CgroupParents | None
    cpu_limit: float | None  # cores per tenant process (cgroup cpu quota), None: no quota
    uid: int | None  # drop to this uid (when the supervisor is root)
    workdir: Path  # where the sockets and the import map are created
    spare_workers: int = 3  # Workers each process keeps pre-warmed (libraries evaluated)
    realms: bool = True  # the realm fast path (runtime/realm_worker.js); False: none started

    @property
    def deno(self) -> str:
        return self.files.deno

    @property
    def import_map(self) -> Path:
        return self.workdir / "imports.json"


#: The most Workers a tenant process holds at once, its running jobs' and its ready ones
#: together: the pool is sized by demand (from ``spare_workers``, more after a burst of jobs)
#: within what the running jobs leave of this, so 20 concurrent calls of a tenant find 20 ready
#: Workers after a first such burst. Each Worker holds ~12 MB (RSS, measured) beyond a job's
#: heap; with the host (~53 MB) they fit in the 384 MiB the memory limit adds to ``memory_mb``
#: (``_process.HEAP_OVERHEAD_MB``). A hard cap: the host refuses more than 24.
MAX_WORKERS = 20


def run_as(uid: int | None) -> dict[str, Any]:
    """``create_subprocess_exec`` arguments that drop to ``uid`` (none if ``uid`` is None)."""
    if uid is None:
        return {}
    return {"user": uid, "group": uid, "extra_groups": []}


async def prepare(
    mode: Mode,
    deno: str | None,
    bwrap: str,
    cpu_limit: float | None = 1.0,
    spare_workers: int = 3,
    realms: bool = True,
) -> LaunchConfig:
    """Check the host (and, isolated, that bubblewrap really starts Deno); make the workdir."""
    deno_bin = await asyncio.to_thread(find_deno, deno)
    await asyncio.to_thread(_check_files, mode, bwrap)
    uid = SANDBOX_UID if os.geteuid() == 0 else None
    files = await asyncio.to_thread(sandbox_files, deno_bin, uid)
    lib_binds: tuple[str, ...] = ()
    if mode == "isolated":
        lib_binds = tuple(await asyncio.to_thread(library_binds, files.deno))
        if uid is not None:
            await asyncio.to_thread(_check_libraries, lib_binds, uid)
    # the vendored libraries, as the Deno process sees them (for the import map)
    vendor_url = "file:///sandbox/vendor" if mode == "isolated" else Path(files.vendor).as_uri()
    workdir = await asyncio.to_thread(_make_workdir, uid, vendor_url)
    if mode == "isolated":
        try:
            await _probe(bwrap, files, lib_binds, workdir, uid)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
    cgroups = await asyncio.to_thread(CgroupParents.detect)
    return LaunchConfig(
        mode=mode,
        files=files,
        bwrap=bwrap,
        lib_binds=lib_binds,
        cgroups=cgroups,
        cpu_limit=cpu_limit,
        uid=uid,
        workdir=workdir,
        spare_workers=spare_workers,
        realms=realms,
    )


def _make_workdir(uid: int | None, vendor_url: str | None = None) -> Path:
    """A fresh directory for the sockets and the import map that the sandbox uid can enter."""
    parents: list[str | None] = [None]
    if uid is not None:
        parents.append("/tmp")
    for parent in parents:
        workdir = Path(tempfile.mkdtemp(prefix="voicefn-js-", dir=parent))
        os.chmod(workdir, 0o711)
        if uid is None or reachable_by_others(workdir, enter_only=True) is None:
            break
        workdir.rmdir()
    else:
        raise unavailable(
            f"the sandbox uid {uid} cannot enter the temporary directory {workdir.parent}; "
            "set TMPDIR to a directory every user may enter (e.g. /tmp)."
        )
    imports = workdir / "imports.json"
    imports.write_text(import_map_json(vendor_url))
    os.chmod(imports, 0o644)
    return workdir


def _check_libraries(lib_binds: tuple[str, ...], uid: int) -> None:
    for i, arg in enumerate(lib_binds):
        if arg == "--ro-bind" and i + 1 < len(lib_binds):
            blocked = reachable_by_others(Path(lib_binds[i + 1]))
            if blocked is not None:
                raise unavailable(
                    f"the sandbox uid {uid} cannot read {blocked}, a shared library Deno needs; "
                    "make it (and the folders on the way) world-readable."
                )


def _check_files(mode: Mode, bwrap: str) -> None:
    for path in (HOST_JS, WORKER_JS, VENDOR_DIR / "axios.js", RUNTIME_DIR / "realm_worker.js"):
        if not path.is_file():
            raise unavailable(f"the sandbox file {path} is missing (broken install).")
    if mode == "isolated" and not (os.path.isfile(bwrap) and os.access(bwrap, os.X_OK)):
        raise unavailable(
            f"bubblewrap was not found at {bwrap}. Install it (Debian/Ubuntu: "
            "`apt-get install bubblewrap`) or pass bwrap=/path/to/bwrap."
        )


async def _probe(
    bwrap: str, files: SandboxFiles, lib_binds: tuple[str, ...], workdir: Path, uid: int | None
) -> None:
    """Run ``deno --version`` in the namespaces every tenant process gets, with every file it
    binds (but the socket), as the uid it runs as: a path that uid cannot open fails here."""
    argv = [
        *_bwrap_options(bwrap, files.deno, lib_binds),
        *_file_binds(files, workdir / "imports.json"),
        "--remount-ro",
        "/",
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            "/sandbox/deno",
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
            **run_as(uid),
        )
        out, err = await asyncio.wait_for(proc.communicate(), _PROBE_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise unavailable(f"bubblewrap could not be run ({exc}).") from exc
    if proc.returncode != 0 or not out.startswith(b"deno "):
        message = clean_text(err.decode("utf-8", "replace").strip(), 300)
        if "Can't find source path" in message:
            raise unavailable(
                f"bubblewrap, running as uid {uid if uid is not None else os.getuid()}, could "
                f"not open a file the sandbox needs ({message}). Fix: make that path and every "
                "folder on the way readable by that uid, or install voicefn (and `deno`) in a "
                "world-readable folder."
            )
        raise unavailable(
            "bubblewrap could not start Deno in new namespaces "
            f"({message or f'exit status {proc.returncode}'}). Unprivileged user namespaces "
            "must be enabled (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu "
            f"kernel.apparmor_restrict_unprivileged_userns=0), and {files.deno} must be readable "
            f"by uid {uid if uid is not None else os.getuid()}."
        )


# ------------------------------------------------------------------------------- command line


def _file_binds(files: SandboxFiles, import_map: Path) -> list[str]:
    """Read-only binds of the scripts, the vendored libraries and the import map."""
    return [
        "--ro-bind",
        files.host_js,
        "/sandbox/host.js",
        "--ro-bind",
        files.worker_js,
        "/sandbox/worker.js",
        "--ro-bind",
        files.vendor,
        "/sandbox/vendor",
        "--ro-bind",
        files.runtime,
        "/sandbox/runtime",
        "--ro-bind",
        str(import_map),
        "/sandbox/imports.json",
    ]


def _bwrap_options(bwrap: str, deno: str, lib_binds: tuple[str, ...]) -> list[str]:
    """bubblewrap with new namespaces, a clean environment and the Deno binary (+ libraries)."""
    return [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--setenv",
        "DENO_DIR",
        "/nonexistent",
        "--setenv",
        "NO_COLOR",
        "1",
        "--setenv",
        "DENO_NO_UPDATE_CHECK",
        "1",
        *lib_binds,
        "--ro-bind",
        deno,
        "/sandbox/deno",
    ]


def _deno_argv(
    deno: str,
    host: str,
    worker: str,
    vendor: str,
    runtime: str,
    sock: str,
    imports: str,
    memory_mb: int,
    spares: int,
    realms: bool,
) -> list[str]:
    """``deno run host.js``: no remote code, and only the socket and the scripts allowed."""
    return [
        deno,
        "run",
        "--no-prompt",
        "--no-remote",
        "--no-npm",
        "--no-config",
        "--no-lock",
        "--cached-only",
        "--no-code-cache",
        "--no-check",
        "--unstable-worker-options",
        f"--import-map={imports}",
        f"--allow-read={worker},{vendor},{runtime},{sock}",
        f"--allow-write={sock}",
        f"--allow-net=unix:{sock}",
        "--deny-env",
        "--deny-run",
        "--deny-ffi",
        "--deny-sys",
        f"--v8-flags=--max-old-space-size={memory_mb}",
        host,
        sock,
        str(spares),
        str(MAX_WORKERS),
        "1" if realms else "0",
    ]


def tenant_argv(
    cfg: LaunchConfig, memory_mb: int, socket_path: Path, procs_files: list[str]
) -> list[str]:
    """The command line of one tenant's process; its host connects to ``socket_path``."""
    if cfg.mode == "isolated":
        sock = "/sandbox/host.sock"
        deno_cmd = _deno_argv(
            "/sandbox/deno",
            "/sandbox/host.js",
            "/sandbox/worker.js",
            "/sandbox/vendor",
            "/sandbox/runtime",
            sock,
            "/sandbox/imports.json",
            memory_mb,
            cfg.spare_workers,
            cfg.realms,
        )
        argv = [
            *_bwrap_options(cfg.bwrap, cfg.deno, cfg.lib_binds),
            *_file_binds(cfg.files, cfg.import_map),
            "--ro-bind",
            str(socket_path),
            sock,
            # Deno reads /proc/self/exe (std::env::current_exe) and panics without it; a static
            # link is enough (only Deno runs in here), so no procfs is mounted.
            "--symlink",
            "/sandbox/deno",
            "/proc/self/exe",
            "--remount-ro",
            "/",
            "--chdir",
            "/sandbox",
            *deno_cmd,
        ]
    else:
        argv = _deno_argv(
            cfg.deno,
            cfg.files.host_js,
            cfg.files.worker_js,
            cfg.files.vendor,
            cfg.files.runtime,
            str(socket_path),
            str(cfg.import_map),
            memory_mb,
            cfg.spare_workers,
            cfg.realms,
        )
    if (cfg.cgroups is None or cfg.cgroups.cpu is None) and os.access(NICE, os.X_OK):
        argv = [NICE, "-n", str(NICENESS), *argv]
    # Join the cgroups before exec, so every descendant is inside from the start; no core
    # dumps (a V8 OOM aborts), no file writes, bounded descriptors.
    return [
        "/bin/sh",
        "-c",
        "ulimit -c 0 && ulimit -f 0 && ulimit -n 1024 || exit 124; "
        'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; '
        'shift; exec "$@"',
        "sh",
        *procs_files,
        "--",
        *argv,
    ]
