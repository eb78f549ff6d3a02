"""Where the sandbox's files come from: the caller's install, or a verified root-owned copy.

A root supervisor runs each tenant's process (bubblewrap included) as uid 65534, and bubblewrap
opens the paths it binds with that uid's rights. voicefn installed in a venv in a 0700 home
folder (``python3 -m venv ~/venv``, ``pip install --user`` as root) is out of that uid's reach:
"bwrap: Can't find source path .../bin/deno: Permission denied". So, when the sandbox uid cannot
reach them, exactly the files the sandbox binds -- the Deno binary, ``host.js``, ``worker.js``, ``runtime/``
and ``vendor/`` -- are copied (as root) into a root-owned, world-readable, read-only directory
named by the SHA-256 of their contents (:data:`STAGE_DIRS`). Nothing else becomes visible to the
sandbox. Every path is resolved (symlinked venvs), so the copy is of the real files.

A staged copy is reused only when the directory and every file in it are root-owned and not
writable by anyone else (so only root could have changed them since they were verified), and
every size matches; ``host.js``, ``worker.js``, ``vendor/`` and ``runtime/`` are compared byte for byte.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._host import PACKAGE_DIR
from .api import unavailable

__all__ = ["STAGE_DIRS", "SandboxFiles", "reachable_by_others", "sandbox_files"]

HOST_JS = PACKAGE_DIR / "host.js"
WORKER_JS = PACKAGE_DIR / "worker.js"
VENDOR_DIR = PACKAGE_DIR / "vendor"
#: the realm runtime (fast path: a fresh V8 context per job in a reused Worker) and the scrub
RUNTIME_DIR = PACKAGE_DIR / "runtime"
#: where staged copies go (the first one that is usable), each in a ``<sha256>`` subdirectory
STAGE_DIRS = (Path("/var/cache/voicefn/js-sandbox"), Path(tempfile.gettempdir(), "voicefn-js-0"))


@dataclass(frozen=True)
class SandboxFiles:
    """The real paths of what the sandbox binds, and the staged directory if it is a copy."""

    deno: str
    host_js: str
    worker_js: str
    vendor: str
    runtime: str
    staged: Path | None = None
    #: why a staged copy is used (the path the sandbox uid could not read); None: in place
    reason: str | None = None


def reachable_by_others(
    path: Path, *, executable: bool = False, enter_only: bool = False
) -> str | None:
    """None if a uid that is neither owner nor in the group can read ``path`` (and execute it,
    and enter every folder on the way; with ``enter_only``, just enter the folder ``path``);
    else the first path that stops it."""
    real = Path(os.path.realpath(path))
    try:
        for parent in reversed(real.parents):
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return str(parent)
        mode = os.stat(real).st_mode
    except OSError:
        return str(real)
    if enter_only:
        return None if mode & stat.S_IXOTH else str(real)
    need = stat.S_IROTH | (stat.S_IXOTH if executable or stat.S_ISDIR(mode) else 0)
    if mode & need != need:
        return str(real)
    if stat.S_ISDIR(mode):
        for child in real.iterdir():
            blocked = reachable_by_others(child)
            if blocked is not None:
                return blocked
    return None


def sandbox_files(deno: str, sandbox_uid: int | None) -> SandboxFiles:
    """The files to bind. In place when the sandbox runs as the caller (``sandbox_uid`` None) or
    the sandbox uid can reach them; otherwise a staged copy (:class:`SandboxUnavailable` saying
    which path and what to do when that is impossible)."""
    sources = {
        "deno": Path(os.path.realpath(deno)),
        "host.js": Path(os.path.realpath(HOST_JS)),
        "worker.js": Path(os.path.realpath(WORKER_JS)),
        "vendor": Path(os.path.realpath(VENDOR_DIR)),
        "runtime": Path(os.path.realpath(RUNTIME_DIR)),
    }
    in_place = SandboxFiles(
        deno=str(sources["deno"]),
        host_js=str(sources["host.js"]),
        worker_js=str(sources["worker.js"]),
        vendor=str(sources["vendor"]),
        runtime=str(sources["runtime"]),
    )
    if sandbox_uid is None:
        return in_place
    blocked = [
        b
        for name, src in sources.items()
        if (b := reachable_by_others(src, executable=name == "deno")) is not None
    ]
    if not blocked:
        return in_place
    if os.geteuid() != 0:
        raise unavailable(
            f"the sandbox uid {sandbox_uid} cannot read {blocked[0]}. Install voicefn (and the "
            "`deno` package) where every folder on the way is world-executable, e.g. a venv "
            "outside your home folder, or `chmod o+x` the folders on the way."
        )
    reason = f"the sandbox uid {sandbox_uid} cannot read {blocked[0]}"
    problems: list[str] = []
    for base in STAGE_DIRS:
        try:
            return dataclasses.replace(_stage(base, sources), reason=reason)
        except OSError as exc:
            problems.append(f"{base}: {exc.strerror or exc}")
    raise unavailable(
        f"the sandbox uid {sandbox_uid} cannot read {blocked[0]} (voicefn is installed in a "
        "folder only its owner may enter), and no root-owned staging directory for a copy of "
        f"the sandbox's files could be used ({'; '.join(problems)}). Fix: let root create "
        f"{STAGE_DIRS[0]} (root-owned, not writable by others), or install voicefn where every "
        "folder on the way is world-executable."
    )


# ------------------------------------------------------------------------------- staging


def _digest(sources: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for name, path in sorted(sources.items()):
        files = (
            [(f"{name}/{f.name}", f) for f in sorted(path.iterdir())]
            if path.is_dir()
            else [(name, path)]
        )
        for label, file in files:
            if not file.is_file():
                continue
            h.update(f"{label}\0{file.stat().st_size}\0".encode())
            with open(file, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()[:40]


def _safe_dir(path: Path) -> None:
    """``path`` and its parents are root-owned and writable by nobody else (or sticky)."""
    for p in (path, *path.parents):
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            st = os.stat(p)
        if st.st_uid != 0:
            raise PermissionError(f"{p} is not owned by root")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
            raise PermissionError(f"{p} is writable by others")


def _ensure_base(base: Path) -> None:
    """Create ``base`` (root-owned, 0755) -- only under a folder that is itself safe."""
    existing = next(p for p in (base, *base.parents) if p.exists())
    _safe_dir(existing)
    for p in reversed([base, *base.parents]):
        if not p.exists():
            with contextlib.suppress(FileExistsError):
                p.mkdir(mode=0o755)
            os.chmod(p, 0o755)
    _safe_dir(base)


def _verified(staged: Path, sources: dict[str, Path]) -> bool:
    """The staged copy is intact: root-owned, read-only for all, same sizes, same small files."""
    try:
        _safe_dir(staged)
        for name, src in sources.items():
            dst = staged / name
            pairs = [(f, dst / f.name) for f in src.iterdir()] if src.is_dir() else [(src, dst)]
            for s, d in pairs:
                st = os.lstat(d)
                if (
                    not stat.S_ISREG(st.st_mode)
                    or st.st_uid != 0
                    or st.st_mode & 0o222
                    or st.st_size != s.stat().st_size
                ):
                    return False
                if name != "deno" and d.read_bytes() != s.read_bytes():
                    return False
    except OSError:
        return False
    return True


def _stage(base: Path, sources: dict[str, Path]) -> SandboxFiles:
    _ensure_base(base)
    staged = base / _digest(sources)
    files = SandboxFiles(
        deno=str(staged / "deno"),
        host_js=str(staged / "host.js"),
        worker_js=str(staged / "worker.js"),
        vendor=str(staged / "vendor"),
        runtime=str(staged / "runtime"),
        staged=staged,
    )
    if staged.exists():
        if _verified(staged, sources):
            return files
        shutil.rmtree(staged, ignore_errors=True)
    tmp = base / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
    tmp.mkdir(mode=0o700)
    try:
        for name, src in sources.items():
            if src.is_dir():
                (tmp / name).mkdir(mode=0o755)
                for f in src.iterdir():
                    if f.is_file():
                        shutil.copyfile(f, tmp / name / f.name)
                        os.chmod(tmp / name / f.name, 0o444)
                os.chmod(tmp / name, 0o555)
            else:
                shutil.copyfile(src, tmp / name)
                os.chmod(tmp / name, 0o555 if name == "deno" else 0o444)
        if _digest({n: tmp / n for n in sources}) != staged.name:
            raise OSError("the copy differs from the installed files")
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, staged)
        except OSError:  # another supervisor staged the same files meanwhile
            if not _verified(staged, sources):
                raise
    finally:
        if tmp.exists():
            for d in (tmp, tmp / "vendor", tmp / "runtime"):
                with contextlib.suppress(OSError):
                    os.chmod(d, 0o700)
            shutil.rmtree(tmp, ignore_errors=True)
    return files
