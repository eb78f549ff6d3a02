"""What the Python sandbox allows: the seccomp allow-list, the rlimits and the bubblewrap argv.

Everything here is data built on the host and handed to the worker (``worker.py`` and the
``sandboxed`` package), which only applies it. Keeping it here keeps the policy reviewable and
testable in one place.

The seccomp filter is an ALLOW-list for x86-64 (other architectures and the x32 ABI hit the
filter's bad-arch action, which kills the process). Anything not listed is refused with EPERM;
the syscalls in :data:`KILL_SYSCALLS` kill the process outright (SIGSYS) because no honest
function ever calls them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Argument comparisons: (argument index, operator, value[, mask]). ``"$pid"`` is replaced by
# the child's own pid when the filter is built (the pid is only known after the fork).
ArgRule = tuple[int, str, int | str] | tuple[int, str, int | str, int]
Rule = tuple[str, str, tuple[ArgRule, ...]]

#: Flags that make ``open``/``openat`` able to write or create anything. (``O_TMPFILE`` is
#: ``__O_TMPFILE | O_DIRECTORY``: only its own bit goes in the mask, or directories could not be
#: listed.)
O_TMPFILE_BIT = 0x400000
OPEN_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | O_TMPFILE_BIT
CLONE_THREAD = 0x00010000
#: Namespace flags: never together with a thread either.
CLONE_NEW_FLAGS = (
    0x00000080  # CLONE_NEWTIME
    | 0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
#: ioctl requests Python itself makes (isatty, non-blocking, close-on-exec, bytes readable).
IOCTL_ALLOWED = (
    0x5401,  # TCGETS
    0x5413,  # TIOCGWINSZ
    0x541B,  # FIONREAD
    0x5421,  # FIONBIO
    0x5450,  # FIONCLEX
    0x5451,  # FIOCLEX
)
PR_SET_NAME, PR_GET_NAME = 15, 16
#: fcntl commands CPython, asyncio and httpx use: duplicate a descriptor, read/set its flags.
#: Everything else is refused: F_SETOWN/F_SETOWN_EX/F_SETSIG (with O_ASYNC they make the kernel
#: signal ANY process of the sandbox uid: the issue-7 attack on the zygote and the next child),
#: F_NOTIFY and F_SETLEASE (signals too), F_SETPIPE_SZ, locks, seals, F_GETOWN* (not needed).
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
FCNTL_ALLOWED = (F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_DUPFD_CLOEXEC)
#: F_SETFL may not set O_ASYNC (signal-driven I/O; the default owner is refused anyway).
O_ASYNC = 0o20000

#: Allowed without conditions: memory, time, signals to self, reading files, waiting, pipes.
ALLOW_SYSCALLS: tuple[str, ...] = (
    # I/O on descriptors the process already has (files can only be opened read-only)
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "preadv",
    "preadv2",
    "close",
    "close_range",
    "lseek",
    "dup",
    "dup2",
    "dup3",
    "pipe",
    "pipe2",
    "eventfd2",
    # file metadata, directories (the mount namespace decides what exists)
    "fstat",
    "stat",
    "lstat",
    "newfstatat",
    "statx",
    "access",
    "faccessat",
    "faccessat2",
    "getdents64",
    "getcwd",
    "chdir",
    "fchdir",
    "readlink",
    "readlinkat",
    # memory
    "mmap",
    "mprotect",
    "munmap",
    "mremap",
    "brk",
    "madvise",
    # signals (delivery to others is refused: see kill/tgkill below)
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigsuspend",
    "sigaltstack",
    "pause",
    "alarm",
    "setitimer",
    "getitimer",
    # waiting and event loops
    "select",
    "pselect6",
    "poll",
    "ppoll",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "futex",
    "futex_waitv",
    "sched_yield",
    "nanosleep",
    "clock_nanosleep",
    "restart_syscall",
    # asyncio's wake-up socketpair is created before the filter; using it is fine
    "sendto",
    "recvfrom",
    # threads (clone itself is conditional, below)
    "set_robust_list",
    "get_robust_list",
    "set_tid_address",
    "rseq",
    "arch_prctl",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    # identity, time, limits (read only), randomness
    "getpid",
    "gettid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getresuid",
    "getresgid",
    "getpgrp",
    "getpgid",
    "getsid",
    "getrlimit",
    "getrusage",
    "times",
    "getpriority",
    "getcpu",
    "sched_getaffinity",
    "sched_getparam",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "time",
    "getrandom",
)

#: Host facts (kernel version, uptime, load, free memory, process count, disk sizes): not in the
#: allow-list, so refused with EPERM; ``sandboxed.hostfacts`` gives ``os.uname()`` a fake answer.
HOST_FACT_SYSCALLS: tuple[str, ...] = ("uname", "sysinfo", "statfs", "fstatfs")

#: Refused by killing the process (SIGSYS): debugging, kernel attack surface, namespaces.
KILL_SYSCALLS: tuple[str, ...] = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "bpf",
    "userfaultfd",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "personality",
    "iopl",
    "ioperm",
    "modify_ldt",
    "lookup_dcookie",
    "quotactl",
    "swapon",
    "swapoff",
    "reboot",
)

#: Refused with ENOSYS so that libc falls back to a call the filter can inspect.
ENOSYS_SYSCALLS: tuple[str, ...] = ("clone3", "openat2")


def conditional_rules() -> tuple[Rule, ...]:
    """Syscalls allowed only with some arguments."""
    rules: list[Rule] = [
        # opening files: read-only only (the mount namespace is read-only as well)
        ("allow", "open", ((1, "masked_eq", 0, OPEN_WRITE_FLAGS),)),
        ("allow", "openat", ((2, "masked_eq", 0, OPEN_WRITE_FLAGS),)),
        # clone: threads only (CLONE_THREAD set, no namespace flags) -- no fork, no vfork
        ("allow", "clone", ((0, "masked_eq", CLONE_THREAD, CLONE_THREAD | CLONE_NEW_FLAGS),)),
        # signals: only to the process itself (kill(0), kill(-1) and other pids are refused;
        # tkill, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal are not allowed at all)
        ("allow", "kill", ((0, "eq", "$pid"),)),
        ("allow", "tgkill", ((0, "eq", "$pid"),)),
        # resource limits: reading only (new_limit == NULL), so they cannot be raised or
        # lowered, and only its own (pid 0 or its pid)
        ("allow", "prlimit64", ((0, "eq", 0), (2, "eq", 0))),
        ("allow", "prlimit64", ((0, "eq", "$pid"), (2, "eq", 0))),
        ("allow", "prctl", ((0, "eq", PR_SET_NAME),)),
        ("allow", "prctl", ((0, "eq", PR_GET_NAME),)),
        # fcntl: an allow-list of commands; F_SETFL only without O_ASYNC
        ("allow", "fcntl", ((1, "eq", F_SETFL), (2, "masked_eq", 0, O_ASYNC))),
    ]
    rules.extend(("allow", "fcntl", ((1, "eq", command),)) for command in FCNTL_ALLOWED)
    rules.extend(("allow", "ioctl", ((1, "eq", request),)) for request in IOCTL_ALLOWED)
    return tuple(rules)


def seccomp_policy() -> dict[str, Any]:
    """The whole filter as JSON-able data for the worker."""
    rules: list[list[Any]] = [["allow", name, []] for name in ALLOW_SYSCALLS]
    rules += [["kill", name, []] for name in KILL_SYSCALLS]
    rules += [["enosys", name, []] for name in ENOSYS_SYSCALLS]
    rules += [
        [action, name, [list(arg) for arg in args]] for action, name, args in conditional_rules()
    ]
    return {"default_errno": 1, "rules": rules}  # EPERM


@dataclass(frozen=True)
class ChildLimits:
    """rlimits applied in every invocation's process (besides RLIMIT_AS and RLIMIT_CPU)."""

    nofile: int = 64
    nproc: int = 48  # all tasks of the sandbox uid in this worker's user namespace, threads too
    thread_stack_bytes: int = 1 << 20

    def to_json(self) -> dict[str, int]:
        return {
            "nofile": self.nofile,
            "nproc": self.nproc,
            "thread_stack_bytes": self.thread_stack_bytes,
        }


# ------------------------------------------------------------------------------ bubblewrap

#: Under /usr but naming the host's kernel (its version is a host fact): empty in the sandbox.
HIDDEN_USR_DIRS = ("/usr/lib/modules", "/usr/src")
SANDBOX_ROOT = "/sandbox"
SANDBOX_SITE = "/sandbox/site"
SANDBOX_WORKER = "/sandbox/worker.py"
SANDBOX_SECCOMP_DIR = "/sandbox/seccomp"


#: Environment of the worker (everything else is cleared).
def worker_env(pythonpath: Sequence[str]) -> dict[str, str]:
    return {
        "PYTHONPATH": ":".join(pythonpath),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUTF8": "1",
        "PYTHONHASHSEED": "random",
        "LANG": "C.UTF-8",
        "MALLOC_ARENA_MAX": "2",  # per-thread arenas would eat the address-space limit
        "PATH": "/usr/bin",
    }


def python_argv(python: str, worker: str, control_fd: int) -> list[str]:
    """``-S -s -P -B``: no site module, no user site, no script dir on sys.path, no .pyc."""
    return [python, "-S", "-s", "-P", "-B", worker, str(control_fd)]


def bwrap_argv(
    *,
    bwrap: str,
    python: str,
    worker_file: str,
    packages: Sequence[tuple[str, str]],
    seccomp_file: str | None,
    control_fd: int,
    command: Sequence[str] | None = None,
) -> list[str]:
    """The bubblewrap command line for one worker.

    ``packages`` are (name, host directory or file) pairs, each bound read-only under
    ``/sandbox/site``. Only ``/usr`` (read-only), those packages, the worker file and the
    seccomp extension are visible; no /etc, /proc, /dev, /tmp, /home or /work; nothing writable.
    ``command`` replaces the worker command (tests use it to probe the namespaces alone).
    """
    argv = [
        bwrap,
        "--unshare-all",  # user, ipc, pid, net (no interfaces but a down loopback), uts, cgroup
        "--unshare-user",
        "--disable-userns",  # no nested user namespaces from inside
        "--die-with-parent",
        "--new-session",  # setsid: no TIOCSTI into the host terminal
        "--clearenv",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/bin", "usr/bin")):
        if os.path.isdir(os.path.join("/usr", target.removeprefix("usr/"))):
            argv += ["--symlink", target, link]
    if not python.startswith("/usr/local/") and os.path.isdir("/usr/local"):
        # host-specific installs and configuration: hidden behind an empty read-only tmpfs
        argv += ["--tmpfs", "/usr/local", "--remount-ro", "/usr/local"]
    for hidden in HIDDEN_USR_DIRS:
        if os.path.isdir(hidden):
            argv += ["--tmpfs", hidden, "--remount-ro", hidden]
    for name, path in packages:
        argv += ["--ro-bind", path, f"{SANDBOX_SITE}/{name}"]
    argv += ["--ro-bind", worker_file, SANDBOX_WORKER]
    if seccomp_file is not None:
        argv += ["--ro-bind", seccomp_file, sandbox_seccomp_path(seccomp_file)]
    for key, value in worker_env([SANDBOX_SITE]).items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", "/", "--remount-ro", "/", "--"]
    argv += (
        list(command) if command is not None else python_argv(python, SANDBOX_WORKER, control_fd)
    )
    return argv


def sandbox_seccomp_path(host_path: str) -> str:
    return f"{SANDBOX_SECCOMP_DIR}/{os.path.basename(host_path)}"
