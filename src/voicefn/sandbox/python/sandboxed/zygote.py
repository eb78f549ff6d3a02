"""The zygote (one per worker) and the lockdown of each child it forks (one per invocation).

Zygote: reads its init message from the control socket, patches httpx, warms up (see
:mod:`.warmup`), then waits. On ``spawn`` it forks a child and hands the supervisor the child's
three pipes (SCM_RIGHTS); on ``kill`` it kills a child; when a child ends it reports how (exit
code / signal / CPU / RSS). It never reads or writes a child's pipes.

Child: keeps only its pipes (fd 3 in, fd 4 out, fd 1/2 -> a captured pipe), makes a fresh event
loop, waits for its ``run`` message, applies rlimits and the seccomp filter, runs
``await entrypoint(ctx, **arguments)`` once (:func:`.runtime.invoke`), sends ``result`` or
``error``, and exits. No state survives to the next invocation: the next child is a fresh fork of
the zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import gc
import importlib.util
import json
import os
import random
import resource
import select
import signal
import socket
import sys
import threading
from typing import Any, NoReturn

from .channel import Channel, encode, read_frame_blocking
from .egress import patch_httpx
from .hostfacts import hide_host_facts
from .runtime import invoke
from .warmup import rehearse, warm_up

IN_FD = 3
OUT_FD = 4
CONTROL_MAX = 1 << 20
CHILD_FAILED = 70
MAX_SPAWN_BATCH = 64


def load_seccomp_module(path: str | None) -> Any:
    if not path:
        return None
    spec = importlib.util.spec_from_file_location("seccomp", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_filter(sc: Any, policy: dict[str, Any], pid: int) -> Any:
    """The seccomp filter described by ``policy`` (see ``policy.seccomp_policy`` on the host)."""
    filt = sc.SyscallFilter(sc.ERRNO(int(policy["default_errno"])))
    filt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    filt.set_attr(sc.Attr.CTL_TSYNC, 1)
    filt.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
    actions = {"allow": sc.ALLOW, "kill": sc.KILL_PROCESS, "enosys": sc.ERRNO(errno.ENOSYS)}
    ops = {"eq": sc.EQ, "ne": sc.NE}
    for action, name, arg_rules in policy["rules"]:
        args = []
        for rule in arg_rules:
            value = pid if rule[2] == "$pid" else int(rule[2])
            if rule[1] == "masked_eq":
                args.append(sc.Arg(int(rule[0]), sc.MASKED_EQ, int(rule[3]), value))
            else:
                args.append(sc.Arg(int(rule[0]), ops[rule[1]], value))
        try:
            filt.add_rule(actions[action], name, *args)
        except (ValueError, RuntimeError, OSError):
            continue  # a syscall this libseccomp does not know: the default (EPERM) applies
    return filt


# ``$pid`` placeholders for the compiled filter: far above any pid (pid_max <= 2^22), and two
# different ones, so that the instructions holding the pid are found by comparing programs.
PID_MARKS = (0x5EC0_0D01, 0x5EC0_0D02)
BPF_INSN = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
SYS_GETPID = 39  # x86-64
SYS_SECCOMP = 317  # x86-64 (the filter itself kills any other architecture)
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1


def export_program(filt: Any) -> bytes:
    """The filter as the kernel gets it (libseccomp's own BPF), through a pipe."""
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(os.dup(write_end), "wb") as out:
            filt.export_bpf(out)
        os.close(write_end)
        write_end = -1
        chunks = []
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


class CompiledFilter:
    """The seccomp filter compiled ONCE in the zygote, loaded by each child in ~0.15 ms.

    libseccomp turns the policy into BPF when the filter is loaded: about 1 ms per child, on
    every invocation's path. Instead the zygote compiles it twice, with two different
    placeholders for ``$pid``, and keeps the instructions where the programs differ (they must
    differ there only, in ``k``, and hold exactly the placeholders; otherwise this is not used
    and every child builds and loads the filter with libseccomp, as before). The program, the
    ``sock_fprog`` pointing at it and the libc functions are all made in the zygote too (a ctypes
    array type built in the child cost ~0.6 ms on the invocation's path): each child writes its
    own pid into its copy (:meth:`set_pid`, right after the fork) and, once its ``run`` message
    is in, hands the program to the kernel (``seccomp(SET_MODE_FILTER, TSYNC)`` after
    ``PR_SET_NO_NEW_PRIVS``, what libseccomp does). A load that fails falls back to libseccomp's
    load: a child never runs without its filter.
    """

    def __init__(self, program: bytes, pid_slots: list[int]) -> None:
        self.program = program
        self.pid_slots = pid_slots
        self._buf = (ctypes.c_char * len(program)).from_buffer_copy(program)
        self._fprog = _SockFprog(len(program) // BPF_INSN, ctypes.addressof(self._buf))
        self._args = (
            ctypes.c_long(SYS_SECCOMP),
            ctypes.c_long(SECCOMP_SET_MODE_FILTER),
            ctypes.c_long(SECCOMP_FILTER_FLAG_TSYNC),
            ctypes.c_void_p(ctypes.addressof(self._fprog)),
        )
        self._pid = -1
        # the libc functions resolved (and their call paths run once) before any fork
        _LIBC.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
        _LIBC.syscall(ctypes.c_long(SYS_GETPID))

    @classmethod
    def build(cls, sc: Any, policy: dict[str, Any]) -> CompiledFilter | None:
        try:
            first = export_program(build_filter(sc, policy, PID_MARKS[0]))
            second = export_program(build_filter(sc, policy, PID_MARKS[1]))
        except (OSError, ValueError, RuntimeError):
            return None
        if len(first) != len(second) or not first or len(first) % BPF_INSN:
            return None
        slots: list[int] = []
        for off in range(0, len(first), BPF_INSN):
            a, b = first[off : off + BPF_INSN], second[off : off + BPF_INSN]
            if a == b:
                continue
            ka, kb = (int.from_bytes(x[4:8], sys.byteorder) for x in (a, b))
            if a[:4] != b[:4] or (ka, kb) != PID_MARKS:
                return None
            slots.append(off + 4)
        if not slots:
            return None
        return cls(first, slots)

    def set_pid(self, pid: int) -> None:
        """Write ``pid`` into this process's copy of the program (where ``$pid`` was)."""
        packed = pid.to_bytes(4, sys.byteorder)
        base = ctypes.addressof(self._buf)
        for slot in self.pid_slots:
            ctypes.memmove(base + slot, packed, 4)
        self._pid = pid

    def load(self, pid: int) -> None:
        """Install the filter for ``pid`` (this process, every thread). Raises OSError."""
        if pid != self._pid:
            self.set_pid(pid)
        if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if _LIBC.syscall(*self._args) != 0:
            raise OSError(ctypes.get_errno(), "seccomp(SET_MODE_FILTER) failed")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# Loaded in the zygote, before any fork (a child loads nothing on its path).
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long
_LIBC.prctl.restype = ctypes.c_int


class Zygote:
    def __init__(self, ctrl: socket.socket, init: dict[str, Any]) -> None:
        self.ctrl = ctrl
        self.seccomp = load_seccomp_module(init.get("seccomp_module"))
        self.policy: dict[str, Any] | None = init.get("seccomp") if self.seccomp else None
        self.rehearse = bool(init.get("rehearse", True))
        self.compiled: CompiledFilter | None = None
        if self.policy is not None:
            self.compiled = CompiledFilter.build(self.seccomp, self.policy)
        self.child_limits: dict[str, int] = dict(init.get("child_limits") or {})
        self.by_pidfd: dict[int, tuple[int, int]] = {}
        self.alive: dict[int, int] = {}  # child id -> pid
        self.next_id = 0
        self.poller = select.poll()

    def send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        if fds:
            socket.send_fds(self.ctrl, [encode(msg)], fds)
        else:
            self.ctrl.send(encode(msg))

    def serve(self) -> NoReturn:
        self.poller.register(self.ctrl.fileno(), select.POLLIN)
        self.send(
            {
                "t": "hello",
                "pid": os.getpid(),
                "seccomp": self.seccomp is not None,
                "compiled_filter": self.compiled is not None,
            }
        )
        while True:
            for fd, _event in self.poller.poll():
                if fd == self.ctrl.fileno():
                    self.on_control()
                else:
                    self.reap(fd)

    def on_control(self) -> None:
        try:
            data = self.ctrl.recv(CONTROL_MAX)
        except OSError:
            data = b""
        if not data:
            self.shutdown()
        msg = json.loads(data)
        kind = msg.get("t")
        if kind == "spawn":
            # children asked for ahead of need rehearse; those an invocation waits for do not
            rehearsal = None
            if self.rehearse and msg.get("ahead") is True:
                rehearsal = "http" if msg.get("http") is True else "plain"
            for _ in range(max(1, min(int(msg.get("n", 1)), MAX_SPAWN_BATCH))):
                self.spawn(rehearsal)
        elif kind == "kill":
            pid = self.alive.get(int(msg.get("id", -1)))
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        elif kind == "exit":
            self.shutdown()

    def shutdown(self) -> NoReturn:
        for pid in self.alive.values():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        os._exit(0)

    def reap(self, pidfd: int) -> None:
        cid, pid = self.by_pidfd.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        _, status, usage = os.wait4(pid, 0)
        self.alive.pop(cid, None)
        self.send(
            {
                "t": "exit",
                "id": cid,
                "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "maxrss_kb": usage.ru_maxrss,
            }
        )

    def spawn(self, rehearsal: str | None = None) -> None:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        io_r, io_w = os.pipe()
        self.next_id += 1
        cid = self.next_id
        pid = os.fork()
        if pid == 0:
            code = CHILD_FAILED
            try:
                code = self.child(to_r, from_w, io_w, rehearsal)
            finally:
                os._exit(code)
        for fd in (to_r, from_w, io_w):
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.by_pidfd[pidfd] = (cid, pid)
        self.alive[cid] = pid
        self.poller.register(pidfd, select.POLLIN)
        try:
            # the child's pidfd too: the supervisor kills it and sees it gone without a hop here
            self.send({"t": "ready", "id": cid}, [to_w, from_r, io_r, pidfd])
        finally:
            for fd in (to_w, from_r, io_r):
                os.close(fd)

    # -- the child ----------------------------------------------------------------------

    def child(self, to_r: int, from_w: int, io_w: int, rehearsal: str | None) -> int:
        os.dup2(io_w, 1)
        os.dup2(io_w, 2)
        high_in = fcntl.fcntl(to_r, fcntl.F_DUPFD, 100)
        high_out = fcntl.fcntl(from_w, fcntl.F_DUPFD, 100)
        os.dup2(high_in, IN_FD)
        os.dup2(high_out, OUT_FD)
        os.closerange(OUT_FD + 1, 1 << 16)  # the control socket, the other children's pipes
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        random.seed()  # never share the zygote's random state between invocations
        loop = asyncio.new_event_loop()  # its wake-up socketpair must exist before the filter
        asyncio.set_event_loop(loop)
        filt = None
        if self.compiled is not None:
            self.compiled.set_pid(os.getpid())
        elif self.policy is not None:
            filt = build_filter(self.seccomp, self.policy, os.getpid())
        # forked ahead of need (and not taken yet: no run message waiting), rehearse; a child an
        # invocation already waits for goes straight to it
        if rehearsal is not None and not select.select([IN_FD], [], [], 0)[0]:
            rehearse(loop, http=rehearsal == "http")
        run = read_frame_blocking(IN_FD)
        if run is None or run.get("t") != "run":
            return 0
        self.apply_limits(run.get("limits") or {})
        self.lock_down(filt)
        loop.run_until_complete(invoke(Channel(IN_FD, OUT_FD), run))
        return 0

    def lock_down(self, filt: Any) -> None:
        """Load the seccomp filter (the zygote's compiled one, else libseccomp's)."""
        if self.policy is None:
            return
        if self.compiled is not None:
            try:
                self.compiled.load(os.getpid())
                return
            except OSError:
                pass  # never unfiltered: build and load it the slow way
        if filt is None:
            filt = build_filter(self.seccomp, self.policy, os.getpid())
        filt.load()

    def apply_limits(self, limits: dict[str, Any]) -> None:
        as_bytes = int(limits["as_bytes"])
        cpu = max(1, int(limits["cpu_s"]))
        settings = {
            resource.RLIMIT_AS: as_bytes,
            resource.RLIMIT_FSIZE: 0,
            resource.RLIMIT_CORE: 0,
            resource.RLIMIT_MEMLOCK: 0,
            resource.RLIMIT_MSGQUEUE: 0,
            resource.RLIMIT_NOFILE: int(self.child_limits.get("nofile", 64)),
            resource.RLIMIT_NPROC: int(self.child_limits.get("nproc", 48)),
        }
        for which, value in settings.items():
            resource.setrlimit(which, (value, value))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        threading.stack_size(int(self.child_limits.get("thread_stack_bytes", 1 << 20)))


def main() -> None:
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    ctrl.setblocking(True)
    data = ctrl.recv(CONTROL_MAX)
    if not data:
        return
    init = json.loads(data)
    if init.get("batch") is True:
        # SCHED_BATCH (inherited by every child): a child woken by its run frame waits for a
        # free core instead of preempting the supervisor, which may still be sending a burst's
        # other frames. Only ever a lower claim on the CPU; a child cannot change it (seccomp refuses
        # sched_setscheduler/sched_setattr/setpriority: test_py_burst_pool.py).
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    patch_httpx()
    warm_up()
    hide_host_facts()
    zygote = Zygote(ctrl, init)
    gc.collect()
    gc.freeze()  # fewer copy-on-write faults in the children
    zygote.serve()
