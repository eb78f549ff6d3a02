"""The files the sandbox needs from this install, readable by the sandbox uid (issue 13).

The worker runs as an unprivileged uid (``nobody`` when this process is root), and bubblewrap
opens its bind sources as that uid. With voicefn installed in a venv inside a 0700 home folder
(as ``python3 -m venv ~/venv`` makes), in ``pip install --user``'s ``~/.local``, or with files
made under ``umask 077``, that uid cannot reach them, and the worker never started.

:func:`prepare_files` resolves every needed path to its real path (a venv reached through a
symlinked folder binds the real directories), asks the sandbox uid itself whether it can read
all of them, and when it cannot (only possible when this process is root) copies exactly those
files -- the packages in :data:`~.host.SANDBOX_PACKAGES`, the worker's ``sandboxed`` package and
``worker.py``, nothing else -- into a fresh directory owned by root and the sandbox uid's group,
mode 0750 (not readable by other users), with read-only files. The sandbox sees the same files
under the same names as before: nothing is widened. The copy is removed by :meth:`Files.remove`
(``PythonSandbox.aclose``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from ..common import SandboxUnavailable
from .host import run_as

_PROBE_TIMEOUT_S = 20.0

#: Runs as the sandbox uid: prints the first needed path it cannot read, and why (or nothing).
_PROBE = r"""
import json, os, sys
def check(path):
    if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
        try:
            os.stat(path)
            return "permission denied"
        except OSError as exc:
            return exc.strerror or "cannot be reached"
    return None
for path in json.loads(sys.argv[1]):
    why = check(path)
    if why is None and os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                sub = os.path.join(root, name)
                why = check(sub)
                if why:
                    path = sub
                    break
            if why:
                break
    if why:
        sys.stdout.write(json.dumps([path, why]))
        break
"""


@dataclass
class Files:
    """Where the worker's files are: ``packages`` ((name, host path) pairs, bound under
    ``/sandbox/site``) and ``worker_file``; ``staged`` is the copy made for the sandbox uid."""

    packages: tuple[tuple[str, str], ...]
    worker_file: str
    staged: str | None = None
    #: why the copy was needed (the path the sandbox uid could not read, and why)
    reason: str | None = None

    def remove(self) -> None:
        if self.staged is not None:
            shutil.rmtree(self.staged, ignore_errors=True)
            self.staged = None


def unreadable(paths: list[str], python: str, uid: int | None) -> tuple[str, str] | None:
    """The first of ``paths`` (or a file under one of them) that ``uid`` cannot read, and why;
    None when it can read all of them. Asks that uid itself (runs ``python`` as it)."""
    who = run_as(uid)
    if who.user is None:
        return None  # not root: the sandbox runs as this very user
    try:
        proc = subprocess.run(
            [python, "-I", "-S", "-c", _PROBE, json.dumps(paths)],
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            env={"LANG": "C.UTF-8"},
            cwd="/",
            check=False,
            user=who.user,
            group=who.group,
            extra_groups=who.extra_groups,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return python, f"could not run it as uid {uid} ({exc})"
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        return python, f"failed as uid {uid}: {err[-1][:200] if err else proc.returncode}"
    out = proc.stdout.decode(errors="replace").strip()
    if not out:
        return None
    path, why = json.loads(out)
    return str(path), str(why)


def fix_for(path: str, uid: int | None) -> str:
    """How to make ``path`` reachable for the sandbox uid (for error messages)."""
    return (
        f"install voicefn where uid {uid} can read it (e.g. python3 -m venv /opt/voicefn), or "
        f"let uid {uid} traverse the folders above {path} (chmod o+x on each) and read the "
        "files (chmod -R o+rX), or let voicefn copy them: it needs a writable temporary folder "
        "(TMPDIR) that uid can traverse"
    )


def _copy(source: str, dest: str) -> None:
    if os.path.isdir(source):
        shutil.copytree(
            source,
            dest,
            symlinks=False,
            ignore=shutil.ignore_patterns("*.pyc.*", "*.tmp"),
        )
    else:
        shutil.copy2(source, dest)


def _seal(root: str, gid: int) -> None:
    """Root (this process) owns everything; directories 0755 and files 0444 under a 0750 top
    directory that only root and the sandbox uid's group can enter."""
    for base, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(base, name), 0o755)
        for name in files:
            path = os.path.join(base, name)
            if not os.path.islink(path):
                os.chmod(path, 0o444)
    os.chown(root, 0, gid)
    os.chmod(root, 0o750)


def stage(packages: list[tuple[str, str]], worker_file: str, gid: int) -> Files:
    """Copy the worker's files into a fresh directory the sandbox uid's group can read."""
    staged = tempfile.mkdtemp(prefix="voicefn-pysandbox-")
    try:
        site = os.path.join(staged, "site")
        os.mkdir(site)
        copied: list[tuple[str, str]] = []
        for name, path in packages:
            dest = os.path.join(site, name)
            _copy(path, dest)
            copied.append((name, dest))
        worker = os.path.join(staged, "worker.py")
        shutil.copy2(worker_file, worker)
        _seal(staged, gid)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return Files(tuple(copied), worker, staged)


def prepare_files(
    packages: list[tuple[str, str]], worker_file: str, *, python: str, uid: int | None, gid: int
) -> Files:
    """The worker's files as the sandbox uid can read them (see the module's docstring).
    Raises :class:`SandboxUnavailable` naming the path and the fix when that is impossible."""
    real = [(name, os.path.realpath(path)) for name, path in packages]
    real_worker = os.path.realpath(worker_file)
    needed = [path for _, path in real] + [real_worker]
    missing = unreadable(needed, python, uid)
    if missing is None:
        return Files(tuple(real), real_worker)
    path, why = missing
    if path == python:
        raise SandboxUnavailable(f"{python} {why}", what=f"{python} {why}")
    try:
        files = stage(real, real_worker, gid)
    except OSError as exc:
        what = (
            f"the sandbox uid {uid} cannot read {path} ({why}), and copying the sandbox's "
            f"files to a temporary folder failed ({exc})"
        )
        raise SandboxUnavailable(f"{what}. Fix: {fix_for(path, uid)}", what=what) from None
    files.reason = f"uid {uid} cannot read {path} ({why})"
    still = unreadable([p for _, p in files.packages] + [files.worker_file], python, uid)
    if still is not None:
        files.remove()
        spath, swhy = still
        what = f"the sandbox uid {uid} cannot read {path} ({why}), nor the copy at {spath} ({swhy})"
        raise SandboxUnavailable(f"{what}. Fix: {fix_for(spath, uid)}", what=what)
    return files


def describe_start_failure(stderr: str, uid: int | None) -> str:
    """A sentence naming what failed when bubblewrap or the worker did not start, and the fix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "Can't find source path" in line or "Can't open" in line or "Permission denied" in line:
            path = line.split("path", 1)[-1].split(":", 1)[0].strip() if "path" in line else line
            return f"{line[:300]} -- the sandbox uid {uid} cannot read {path}. Fix: " + fix_for(
                path, uid
            )
    if any(
        "setting up uid map" in line or "No permissions to create new namespace" in line
        for line in lines
    ):
        return (
            f"{lines[-1][:300]} -- bubblewrap cannot create a user namespace. Fix: enable "
            "unprivileged user namespaces (sysctl user.max_user_namespaces>0)"
        )
    with contextlib.suppress(IndexError):
        return lines[-1][:300]
    return "no message from bubblewrap or the worker"
