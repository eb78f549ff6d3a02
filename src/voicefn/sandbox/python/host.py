"""What this host can provide for the Python sandbox, and what to do when something is missing."""

from __future__ import annotations

import importlib
import os
import pwd
import subprocess
import sys
from dataclasses import dataclass, field
from typing import NamedTuple

from ..common import SandboxUnavailable

__all__ = [
    "SANDBOX_PACKAGES",
    "HostSupport",
    "SandboxUnavailable",
    "check_host",
    "package_paths",
]

#: Pure-Python packages the worker imports (httpx and what it needs), bound read-only.
SANDBOX_PACKAGES: tuple[str, ...] = (
    "httpx",
    "httpcore",
    "anyio",
    "sniffio",
    "h11",
    "idna",
    "certifi",
    "typing_extensions",  # anyio needs it on Python 3.11
)
#: The worker's own code (``sandboxed/`` beside this file), bound and importable like them.
WORKER_PACKAGE = "sandboxed"
WORKER_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), WORKER_PACKAGE)
DEFAULT_BWRAP = "/usr/bin/bwrap"
DEFAULT_PYTHON = "/usr/bin/python3"
_PROBE_TIMEOUT_S = 20.0
_UNSAFE_HINT = (
    'Or construct PythonSandbox(mode="unsafe-process") to run without namespaces -- an explicit, '
    "WEAKER choice that gives NO isolation between tenants: rlimits (+ seccomp where available) "
    "only; every function runs as the same uid, can read other tenants' live memory through "
    "/proc/<pid>/mem, kill their calls, and read every file that uid can read. Only for a single "
    "trusted workspace."
)


@dataclass(frozen=True)
class HostSupport:
    """What this host can provide. :attr:`full` means the isolated mode can run."""

    bwrap: bool
    user_namespaces: bool
    seccomp: bool
    unprivileged_uid: int | None
    cgroup_memory: bool
    linux: bool = True
    bwrap_path: str = DEFAULT_BWRAP
    python: str = DEFAULT_PYTHON
    seccomp_module: str | None = None
    problems: tuple[str, ...] = field(default=())

    @property
    def full(self) -> bool:
        return (
            self.linux
            and self.bwrap
            and self.user_namespaces
            and self.seccomp
            and self.unprivileged_uid is not None
            and self.unprivileged_uid != 0
        )

    def describe(self) -> str:
        def yes(flag: bool) -> str:
            return "yes" if flag else "NO"

        uid = "NONE" if self.unprivileged_uid is None else str(self.unprivileged_uid)
        lines = [
            f"Python sandbox host support: {'full' if self.full else 'INCOMPLETE'}",
            f"  linux:               {yes(self.linux)}",
            f"  bubblewrap:          {yes(self.bwrap)} ({self.bwrap_path})",
            f"  user namespaces:     {yes(self.user_namespaces)}",
            f"  seccomp:             {yes(self.seccomp)} (python3-seccomp for {self.python})",
            f"  unprivileged uid:    {uid}",
            f"  cgroup memory:       {yes(self.cgroup_memory)} (optional)",
        ]
        lines += [f"  missing: {problem}" for problem in self.problems]
        return "\n".join(lines)

    def unavailable(self) -> SandboxUnavailable:
        """The exception to raise when :attr:`full` is false."""
        what = "; ".join(self.problems) or "unknown reason"
        return SandboxUnavailable(
            f"The isolated Python sandbox cannot run on this host: {what}. {_UNSAFE_HINT}",
            what=what,
        )


def _unprivileged_uid(uid: int | None) -> tuple[int | None, str | None]:
    euid = os.geteuid()
    if euid != 0:
        if uid is not None and uid != euid:
            return None, (
                f"uid={uid} was asked for but this process is not root (uid {euid}) and cannot "
                "switch: leave uid unset to run the sandbox as the current user"
            )
        return euid, None
    if uid is not None:
        if uid == 0:
            return None, "uid=0 was asked for: the sandbox never runs as root; pass a non-root uid"
        return uid, None
    try:
        return pwd.getpwnam("nobody").pw_uid, None
    except KeyError:
        return None, (
            "this process runs as root and there is no 'nobody' user to drop to: pass uid=<an "
            "unprivileged uid> to PythonSandbox"
        )


def _gid_for(uid: int) -> int:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


class RunAs(NamedTuple):
    """subprocess ``user``/``group``/``extra_groups``: set only when this process is root."""

    user: int | None
    group: int | None
    extra_groups: list[int] | None


def run_as(uid: int | None) -> RunAs:
    if uid is None or os.geteuid() != 0:
        return RunAs(None, None, None)
    return RunAs(uid, _gid_for(uid), [])


def _probe_seccomp(python: str, uid: int | None) -> tuple[str | None, str | None]:
    """Find the python3-seccomp extension module of ``python`` (path, or a problem)."""
    if not os.path.exists(python):
        return None, f"{python} does not exist (the worker runs under the system python3)"
    code = "import seccomp, sys; sys.stdout.write(seccomp.__file__)"
    who = run_as(uid)
    try:
        proc = subprocess.run(
            [python, "-I", "-c", code],
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            cwd="/",
            check=False,
            user=who.user,
            group=who.group,
            extra_groups=who.extra_groups,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not run {python}: {exc}"
    path = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or not path.endswith(".so"):
        return None, (
            f"the seccomp module (Debian package python3-seccomp) is not importable by {python}: "
            "apt-get install python3-seccomp (it is built for the system python3 only)"
        )
    return path, None


def _probe_userns(bwrap: str, python: str, uid: int | None) -> str | None:
    """Start a minimal bubblewrap sandbox as ``uid``; None when it worked."""
    argv = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/bin", "usr/bin")):
        if os.path.isdir(os.path.join("/usr", target.removeprefix("usr/"))):
            argv += ["--symlink", target, link]
    argv += ["--remount-ro", "/", "--", python, "-S", "-c", "pass"]
    who = run_as(uid)
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            env={},
            cwd="/",
            check=False,
            user=who.user,
            group=who.group,
            extra_groups=who.extra_groups,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not run {bwrap}: {exc}"
    if proc.returncode == 0:
        return None
    err = proc.stderr.decode(errors="replace").strip().splitlines()
    why = err[-1][:200] if err else f"exit status {proc.returncode}"
    return (
        f"bubblewrap could not create an unprivileged user namespace ({why}): enable "
        "unprivileged user namespaces (sysctl user.max_user_namespaces>0, Debian "
        "kernel.unprivileged_userns_clone=1, Ubuntu 24.04 "
        "kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap; in a "
        "container allow unshare/clone of user namespaces)"
    )


def _cgroup_memory() -> bool:
    v1 = "/sys/fs/cgroup/memory"
    if os.path.isdir(v1) and os.access(v1, os.W_OK):
        return True
    controllers = "/sys/fs/cgroup/cgroup.controllers"
    try:
        with open(controllers, encoding="ascii") as fh:
            return "memory" in fh.read().split() and os.access("/sys/fs/cgroup", os.W_OK)
    except OSError:
        return False


def check_host(
    *, bwrap: str = DEFAULT_BWRAP, python: str = DEFAULT_PYTHON, uid: int | None = None
) -> HostSupport:
    """Probe this host (runs two tiny processes; ~50 ms)."""
    problems: list[str] = []
    linux = sys.platform.startswith("linux")
    if not linux:
        problems.append(f"the sandbox needs Linux (this is {sys.platform})")
        return HostSupport(
            bwrap=False,
            user_namespaces=False,
            seccomp=False,
            unprivileged_uid=None,
            cgroup_memory=False,
            linux=False,
            bwrap_path=bwrap,
            python=python,
            problems=tuple(problems),
        )
    run_uid, uid_problem = _unprivileged_uid(uid)
    if uid_problem:
        problems.append(uid_problem)
    has_bwrap = os.path.isfile(bwrap) and os.access(bwrap, os.X_OK)
    if not has_bwrap:
        problems.append(
            f"bubblewrap is not installed at {bwrap}: apt-get install bubblewrap "
            "(or pass bwrap=<path>)"
        )
    seccomp_module, seccomp_problem = _probe_seccomp(python, run_uid)
    if seccomp_problem:
        problems.append(seccomp_problem)
    userns = False
    if has_bwrap and run_uid is not None:
        userns_problem = _probe_userns(bwrap, python, run_uid)
        userns = userns_problem is None
        if userns_problem:
            problems.append(userns_problem)
    if not python.startswith("/usr/"):
        problems.append(f"{python} is outside /usr: the sandbox only mounts /usr")
        userns = False
    return HostSupport(
        bwrap=has_bwrap,
        user_namespaces=userns,
        seccomp=seccomp_module is not None,
        unprivileged_uid=run_uid,
        cgroup_memory=_cgroup_memory(),
        linux=True,
        bwrap_path=bwrap,
        python=python,
        seccomp_module=seccomp_module,
        problems=tuple(problems),
    )


def package_paths() -> list[tuple[str, str]]:
    """(name, host path) of each package in :data:`SANDBOX_PACKAGES`, from this process, and of
    the worker's own package (:data:`WORKER_PACKAGE`)."""
    found: list[tuple[str, str]] = []
    for name in SANDBOX_PACKAGES:
        module = importlib.import_module(name)
        file = getattr(module, "__file__", None)
        if not file:
            raise SandboxUnavailable(f"the package {name!r} has no files to mount into the sandbox")
        path = os.path.dirname(os.path.abspath(file)) if file.endswith("__init__.py") else file
        found.append((name if os.path.isdir(path) else os.path.basename(path), path))
    found.append((WORKER_PACKAGE, WORKER_PACKAGE_DIR))
    return found
