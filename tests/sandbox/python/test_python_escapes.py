"""Escape attempts against the real Python sandbox: each is stopped, and each test names the layer.

Layers: ``mount-namespace`` (bubblewrap: only /usr and a few read-only packages exist),
``network-namespace`` (no interfaces), ``seccomp`` (allow-list: EPERM, or SIGSYS for the most
dangerous calls), ``rlimit-*``, ``wall-clock`` (supervisor kill), ``egress-policy`` (the caller's
callback, here the project's real :class:`~voicefn.egress.EgressPolicy`), ``protocol``
(the supervisor validates everything the child sends).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pysandbox_support import HOST, SKIP_REASON, HttpxEgress, fn, refuse_all

from voicefn.egress import EgressPolicy
from voicefn.sandbox.python import Limits, Outcome, PythonSandbox
from voicefn.sandbox.python import policy as sandbox_policy
from voicefn.sandbox.python.host import package_paths, run_as

pytestmark = [
    pytest.mark.skipif(not HOST.full, reason=SKIP_REASON),
    pytest.mark.asyncio(loop_scope="module"),
]

QUICK = Limits(timeout_s=5.0, cpu_s=2.0, memory_mb=64)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sandbox() -> AsyncIterator[PythonSandbox]:
    sb = PythonSandbox(warm_workers=2)
    await sb.start()
    yield sb
    await sb.aclose()


async def run(
    sandbox: PythonSandbox,
    body: str,
    *,
    limits: Limits = QUICK,
    tenant: str = "attacker",
    egress: object = refuse_all,
    context: dict[str, object] | None = None,
) -> Outcome:
    return await sandbox.run(
        fn(body),
        "f",
        {},
        context or {},
        egress=egress,  # type: ignore[arg-type]
        limits=limits,
        tenant=tenant,
    )


def seccomp_refused(outcome: Outcome) -> None:
    assert not outcome.ok, outcome
    assert outcome.error == "exception", outcome
    assert "PermissionError" in outcome.detail or "Errno 1]" in outcome.detail, outcome.detail
    assert outcome.stopped_by == "seccomp", outcome


def killed_by_seccomp(outcome: Outcome) -> None:
    assert not outcome.ok, outcome
    assert outcome.error == "crashed", outcome
    assert outcome.stopped_by == "seccomp", outcome


# ------------------------------------------------------------------------------ host files


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "/etc/shadow",
        "/work/main/pyproject.toml",
        "/proc/self/environ",
        "/proc/1/cmdline",
        "/root/.bash_history",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/usr/local/etc/npmrc",
    ],
)
async def test_host_files_do_not_exist_in_the_mount_namespace(
    sandbox: PythonSandbox, path: str
) -> None:
    outcome = await run(sandbox, f"return {{'status': open({path!r}).read()}}")
    assert outcome.error == "exception"
    assert "FileNotFoundError" in outcome.detail
    assert outcome.stopped_by == "mount-namespace"


async def test_the_sandbox_sees_only_usr_and_its_packages(sandbox: PythonSandbox) -> None:
    outcome = await run(
        sandbox,
        """
        import os
        return {
            "status": "ok",
            "root": sorted(os.listdir("/")),
            "sandbox": sorted(os.listdir("/sandbox")),
            "site": sorted(os.listdir("/sandbox/site")),
            "usr_local": os.listdir("/usr/local"),
            "env": sorted(os.environ),
            "uid": os.getuid(),
            "ppid": os.getppid(),
        }
        """,
    )
    assert outcome.ok, outcome
    value = outcome.value
    assert set(value["root"]) <= {"sandbox", "usr", "bin", "lib", "lib64"}
    assert value["sandbox"] == ["seccomp", "site", "worker.py"]
    assert value["site"] == sorted(name for name, _ in package_paths())
    assert value["usr_local"] == []  # hidden behind an empty tmpfs
    assert "HOME" not in value["env"]
    assert "VIRTUAL_ENV" not in value["env"]
    assert value["uid"] == HOST.unprivileged_uid != 0
    assert value["ppid"] <= 3  # the zygote, in the sandbox's own pid namespace


# ------------------------------------------------------------------- processes and execution


async def test_subclasses_trick_reaches_os_system_but_no_shell_starts(
    sandbox: PythonSandbox,
) -> None:
    outcome = await run(
        sandbox,
        """
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "_wrap_close":
                g = cls.__init__.__globals__
                status = g["system"]("id > /tmp/pwned")
                try:
                    out = g["popen"]("id").read()
                except Exception as exc:
                    out = repr(exc)
                return {"status": status, "popen": out}
        return {"status": "not found"}
        """,
    )
    assert outcome.ok, outcome
    # glibc's system() reports 127 << 8 when it could not start the shell: clone refused
    assert outcome.value["status"] == 127 << 8
    assert "PermissionError" in outcome.value["popen"]


@pytest.mark.parametrize(
    "body",
    [
        "import os\nos.fork()",
        "import os\nos.execv('/usr/bin/id', ['id'])",
        "import os\nos.posix_spawn('/usr/bin/id', ['id'], {})",
        "import subprocess\nsubprocess.run(['id'])",
        "import os\nos.popen('id').read()",
        "import os\nwhile True:\n    os.fork()",  # fork bomb
        "import multiprocessing\nmultiprocessing.Process(target=print).start()",
    ],
    ids=["fork", "execv", "posix_spawn", "subprocess", "popen", "fork-bomb", "multiprocessing"],
)
async def test_process_creation_is_refused_by_seccomp(sandbox: PythonSandbox, body: str) -> None:
    outcome = await run(sandbox, body + "\nreturn {'status': 'escaped'}")
    assert not outcome.ok, outcome
    assert outcome.error == "exception"
    assert outcome.stopped_by in {"seccomp", "mount-namespace"}, outcome
    if "multiprocessing" not in body:
        seccomp_refused(outcome)


async def test_pty_spawn_finds_no_devices(sandbox: PythonSandbox) -> None:
    outcome = await run(sandbox, "import pty\npty.spawn('/bin/sh')\nreturn {'status': 'shell'}")
    assert outcome.error == "exception"
    assert "out of pty devices" in outcome.detail  # no /dev in the mount namespace


@pytest.mark.parametrize(
    ("syscall", "args"),
    [
        (57, ""),
        (58, ""),
        (59, ", b'/usr/bin/id', None, None"),
        (41, ", 2, 1, 0"),
        (53, ", 1, 1, 0"),
    ],
    ids=["fork", "vfork", "execve", "socket", "socketpair"],
)
async def test_raw_syscalls_through_ctypes_get_eperm(
    sandbox: PythonSandbox, syscall: int, args: str
) -> None:
    outcome = await run(
        sandbox,
        f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.syscall({syscall}{args})
        return {{"status": result, "errno": ctypes.get_errno()}}
        """,
    )
    assert outcome.ok, outcome
    assert outcome.value == {"status": -1, "errno": 1}  # EPERM from the seccomp filter


@pytest.mark.parametrize(
    "call",
    [
        "libc.ptrace(0, 0, 0, 0)",  # PTRACE_TRACEME
        "libc.syscall(101, 16, 1, 0, 0)",  # ptrace(PTRACE_ATTACH, 1)
        "libc.unshare(0x10000000)",  # CLONE_NEWUSER
        "libc.syscall(321, 0, 0, 0)",  # bpf
        "libc.syscall(425, 8, 0)",  # io_uring_setup
        "libc.syscall(323, 0)",  # userfaultfd
        "libc.syscall(57 | 0x40000000)",  # x32 ABI fork
    ],
    ids=["ptrace-traceme", "ptrace-attach", "unshare", "bpf", "io_uring", "userfaultfd", "x32"],
)
async def test_dangerous_syscalls_kill_the_process(sandbox: PythonSandbox, call: str) -> None:
    outcome = await run(
        sandbox,
        f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n{call}\nreturn {{'status': 1}}",
    )
    killed_by_seccomp(outcome)


@pytest.mark.parametrize(
    "body",
    [
        "import os\nos.kill(os.getppid(), 9)",
        "import os\nos.kill(-1, 9)",
        "import os\nos.killpg(0, 9)",
        "import os\nos.kill(1, 9)",
        "import signal\nsignal.pthread_kill(1, 9)",
    ],
    ids=["parent", "minus-one", "own-group", "pid-1", "pthread-kill-other"],
)
async def test_signals_to_other_processes_are_refused(sandbox: PythonSandbox, body: str) -> None:
    outcome = await run(sandbox, body + "\nreturn {'status': 'sent'}", tenant="killer")
    assert not outcome.ok
    assert outcome.stopped_by in {"seccomp", None}, outcome
    if "pthread" not in body:
        seccomp_refused(outcome)
    after = await run(sandbox, "return {'status': 'alive'}", tenant="killer")
    assert after.ok
    assert after.value == {"status": "alive"}


async def test_signals_to_itself_still_work(sandbox: PythonSandbox) -> None:
    outcome = await run(
        sandbox,
        """
        import os, signal
        got = []
        signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
        os.kill(os.getpid(), signal.SIGUSR1)
        signal.raise_signal(signal.SIGUSR1)
        return {"status": len(got)}
        """,
    )
    assert outcome.value == {"status": 2}


# ------------------------------------------------------------------------------- resources


async def test_infinite_loop_is_stopped_by_rlimit_cpu(sandbox: PythonSandbox) -> None:
    outcome = await run(
        sandbox, "while True:\n    pass", limits=Limits(timeout_s=10, cpu_s=1, memory_mb=64)
    )
    assert outcome.error == "timeout"
    assert outcome.stopped_by == "rlimit-cpu"
    # before the wall clock (10 s): 1 s of CPU takes several seconds on a loaded 2-core box
    assert outcome.timings["total_ms"] < 10_000


async def test_ignoring_sigxcpu_still_ends_at_the_hard_limit(sandbox: PythonSandbox) -> None:
    outcome = await run(
        sandbox,
        "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass",
        limits=Limits(timeout_s=10, cpu_s=1, memory_mb=64),
    )
    assert outcome.error == "timeout"
    assert outcome.stopped_by == "rlimit-cpu"


@pytest.mark.parametrize(
    "body",
    ["import asyncio\nawait asyncio.sleep(10**6)", "import time\ntime.sleep(10**6)"],
    ids=["asyncio-sleep", "blocking-sleep"],
)
async def test_sleeping_forever_is_stopped_by_the_wall_clock(
    sandbox: PythonSandbox, body: str
) -> None:
    outcome = await run(sandbox, body, limits=Limits(timeout_s=0.7), tenant="sleeper")
    assert outcome.error == "timeout"
    assert outcome.stopped_by == "wall-clock"
    assert 600 <= outcome.timings["total_ms"] < 3000
    after = await run(sandbox, "return {'status': 'next'}", tenant="sleeper")
    assert after.ok


@pytest.mark.parametrize(
    "body",
    [
        "x = b'x' * (4 << 30)\nreturn {'status': len(x)}",
        "x = bytearray(300 << 20)\nreturn {'status': len(x)}",
        "chunks = []\nwhile True:\n    chunks.append(' ' * 100_000)",
    ],
    ids=["4GiB-bytes", "bytearray", "growing-list"],
)
async def test_memory_bombs_are_stopped_by_rlimit_as(sandbox: PythonSandbox, body: str) -> None:
    outcome = await run(sandbox, body)
    assert outcome.error == "memory", outcome
    assert outcome.stopped_by == "rlimit-as"


async def test_thread_bomb_is_stopped_by_rlimit_nproc(sandbox: PythonSandbox) -> None:
    outcome = await run(
        sandbox,
        """
        import threading, time
        threads = []
        while True:
            t = threading.Thread(target=time.sleep, args=(30,), daemon=True)
            t.start()
            threads.append(t)
        """,
    )
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "rlimit-nproc"
    assert "can't start new thread" in outcome.detail


async def test_raising_or_lowering_rlimits_is_refused(sandbox: PythonSandbox) -> None:
    outcome = await run(
        sandbox,
        """
        import resource
        errors = []
        for which, value in ((resource.RLIMIT_CPU, 10**6), (resource.RLIMIT_NOFILE, 8)):
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError) as exc:
                errors.append(type(exc).__name__)
        return {"status": errors, "cpu": resource.getrlimit(resource.RLIMIT_CPU)}
        """,
    )
    assert outcome.ok, outcome
    assert outcome.value["status"] == ["ValueError", "ValueError"]  # EPERM: prlimit64 is read-only
    assert outcome.value["cpu"] == [2, 3]


# -------------------------------------------------------------------------------- network


@pytest.mark.parametrize(
    "body",
    [
        "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)",
        "import socket\nsocket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
        "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=1)",
        "import socket\nsocket.socket(socket.AF_UNIX).connect('/run/x.sock')",
        "import socket\nsocket.socketpair()",
        "import asyncio\nawait asyncio.open_connection('127.0.0.1', PORT)",
    ],
    ids=["raw-icmp", "packet", "tcp-loopback", "unix", "socketpair", "asyncio-tcp"],
)
async def test_sockets_are_refused_by_seccomp(
    sandbox: PythonSandbox, body: str, server: object
) -> None:
    port = server.port  # type: ignore[attr-defined]
    outcome = await run(sandbox, body.replace("PORT", str(port)) + "\nreturn {'status': 1}")
    seccomp_refused(outcome)
    assert server.received == []  # type: ignore[attr-defined]


async def test_without_seccomp_the_network_and_mount_namespaces_still_hold(server: object) -> None:
    """Defense in depth: the bubblewrap layer alone (no seccomp, no rlimits) already stops
    reaching host files, writing anywhere, and connecting to the host's loopback."""
    port = server.port  # type: ignore[attr-defined]
    probe = f"""
import errno, os, socket
out = []
for path in ("/etc/passwd", "/work/main/pyproject.toml", "/proc/self/environ"):
    try:
        open(path).read()
        out.append("read " + path)
    except OSError as exc:
        out.append(type(exc).__name__)
for path in ("/x", "/usr/x", "/sandbox/x", "/sandbox/site/x"):
    try:
        open(path, "w")
        out.append("wrote " + path)
    except OSError as exc:
        out.append(errno.errorcode[exc.errno])
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    out.append("connected")
except OSError as exc:
    out.append(errno.errorcode[exc.errno])
out.append(",".join(name for _, name in socket.if_nameindex()))
print(" ".join(out))
"""
    argv = sandbox_policy.bwrap_argv(
        bwrap=HOST.bwrap_path,
        python=HOST.python,
        worker_file=os.path.join(os.path.dirname(sandbox_policy.__file__), "worker.py"),
        packages=package_paths(),
        seccomp_file=None,
        control_fd=0,
        command=[HOST.python, "-S", "-c", probe],
    )
    who = run_as(HOST.unprivileged_uid)
    proc = await asyncio.to_thread(
        subprocess.run,
        argv,
        capture_output=True,
        timeout=30,
        check=False,
        env={},
        user=who.user,
        group=who.group,
        extra_groups=who.extra_groups,
    )
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.decode().split()
    assert words[:3] == ["FileNotFoundError"] * 3
    assert words[3:7] == ["EROFS"] * 4, words  # a read-only root, /usr and binds
    # 127.0.0.1 is the namespace's own, empty loopback; there is no other interface
    assert words[7] == "ECONNREFUSED", words
    assert words[8] == "lo", words
    assert server.received == []  # type: ignore[attr-defined]


SPELLINGS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://2852039166/",  # 169.254.169.254 as one number
    "http://0xa9fea9fe/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://127.0.0.1:PORT/echo",
    "http://127.1:PORT/echo",
    "http://2130706433:PORT/echo",
    "http://0x7f000001:PORT/echo",
    "http://0177.0.0.1:PORT/echo",
    "http://localhost:PORT/echo",
    "http://LOCALHOST.:PORT/echo",
    "http://[::1]:PORT/echo",
    "http://[::ffff:127.0.0.1]:PORT/echo",
    "http://[0:0:0:0:0:ffff:7f00:1]:PORT/echo",
    "http://0.0.0.0:PORT/echo",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of the metadata address
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", SPELLINGS)
async def test_private_and_metadata_addresses_are_refused_by_the_egress_policy(
    sandbox: PythonSandbox, url: str, server: object
) -> None:
    url = url.replace("PORT", str(server.port))  # type: ignore[attr-defined]
    egress = HttpxEgress(EgressPolicy())
    try:
        outcome = await run(
            sandbox,
            f"""
            try:
                async with httpx.AsyncClient(timeout=10.0) as client:
                    response = await client.get({url!r})
                return {{"status": "reached", "code": response.status_code}}
            except (httpx.RequestError, httpx.InvalidURL) as exc:
                return {{"status": "error", "message": str(exc)}}
            """,
            egress=egress,
        )
    finally:
        await egress.aclose()
    assert outcome.ok, outcome
    assert outcome.value["status"] == "error", outcome.value
    if "0177" in url:  # httpx itself refuses the octal spelling before any request is made
        assert outcome.http == []
        return
    assert "refused by the egress policy" in outcome.value["message"]
    assert len(outcome.http) == 1
    assert "refused by the egress policy" in outcome.http[0]["error"]
    assert server.received == []  # type: ignore[attr-defined]


async def test_an_uncaught_egress_refusal_names_the_layer(sandbox: PythonSandbox) -> None:
    egress = HttpxEgress(EgressPolicy())
    try:
        outcome = await run(
            sandbox,
            "r = await ctx.http.get('http://169.254.169.254/latest/meta-data/')\n"
            "return {'status': r.status_code}",
            egress=egress,
        )
    finally:
        await egress.aclose()
    assert outcome.error == "exception"
    assert outcome.stopped_by == "egress-policy"
    assert "169.254.169.254" in outcome.detail


async def test_a_plain_http_transport_cannot_bypass_egress(
    sandbox: PythonSandbox, server: object
) -> None:
    port = server.port  # type: ignore[attr-defined]
    outcome = await run(
        sandbox,
        f"""
        transport = httpx.AsyncHTTPTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get("http://127.0.0.1:{port}/echo")
        return {{"status": "reached"}}
        """,
    )
    assert outcome.error == "exception"
    assert outcome.stopped_by == "seccomp"  # httpx.ConnectError caused by socket() -> EPERM
    assert server.received == []  # type: ignore[attr-defined]


async def test_too_many_requests_end_the_invocation(sandbox: PythonSandbox) -> None:
    outcome = await run(
        sandbox,
        """
        for i in range(100):
            try:
                await ctx.http.get(f"https://example.com/{i}")
            except httpx.RequestError:
                pass
        return {"status": "done"}
        """,
        limits=Limits(max_http_requests=5),
    )
    assert outcome.error == "too_many_requests"
    assert outcome.stopped_by == "request-limit"
    assert len(outcome.http) == 6


# ---------------------------------------------------------------------------- file writes


@pytest.mark.parametrize(
    "body",
    [
        "open('/tmp/x', 'w').write('x')",
        "open('/sandbox/site/httpx/__init__.py', 'a').write('x')",
        "open('/sandbox/worker.py', 'r+')",
        "import os\nos.open('/sandbox/new', os.O_CREAT | os.O_WRONLY)",
        "import os\nos.mkdir('/sandbox/d')",
        "import os\nos.unlink('/sandbox/worker.py')",
        "import os\nos.rename('/sandbox/worker.py', '/sandbox/w')",
        "import os\nos.symlink('/usr', '/sandbox/l')",
        "import os\nos.chmod('/sandbox/worker.py', 0o777)",
        "import os\nos.memfd_create('x')",
        "import shutil\nshutil.copy('/sandbox/worker.py', '/sandbox/copy.py')",
    ],
    ids=[
        "tmp",
        "append-package",
        "rw-worker",
        "o-creat",
        "mkdir",
        "unlink",
        "rename",
        "symlink",
        "chmod",
        "memfd",
        "copy",
    ],
)
async def test_writing_files_is_refused_by_seccomp(sandbox: PythonSandbox, body: str) -> None:
    outcome = await run(sandbox, body + "\nreturn {'status': 'wrote'}")
    seccomp_refused(outcome)


# ------------------------------------------------------------------- state and other tenants


async def test_nothing_survives_to_the_next_invocation(sandbox: PythonSandbox) -> None:
    first = await run(
        sandbox,
        """
        global LEAK
        LEAK = "secret-1"
        import builtins, json, sys, os, httpx
        builtins.LEAK = "secret-2"
        json.LEAK = "secret-3"
        httpx.AsyncClient.LEAK = "secret-4"
        sys.modules["leak_module"] = json
        os.environ["LEAK"] = "secret-5"
        try:
            open("/tmp/leak", "w").write("secret-6")
        except OSError:
            pass
        return {"status": "planted"}
        """,
        tenant="stateful",
    )
    assert first.ok
    second = await run(
        sandbox,
        """
        import builtins, json, sys, os, httpx
        found = []
        if "LEAK" in globals(): found.append("global")
        if hasattr(builtins, "LEAK"): found.append("builtins")
        if hasattr(json, "LEAK"): found.append("module")
        if hasattr(httpx.AsyncClient, "LEAK"): found.append("class")
        if "leak_module" in sys.modules: found.append("sys.modules")
        if "LEAK" in os.environ: found.append("environ")
        if os.path.exists("/tmp/leak"): found.append("file")
        return {"status": found}
        """,
        tenant="stateful",
    )
    assert second.ok
    assert second.value == {"status": []}


async def test_one_tenant_cannot_see_another_tenants_data(sandbox: PythonSandbox) -> None:
    secret = "tenant-a-" + os.urandom(8).hex()
    holder = asyncio.ensure_future(
        run(
            sandbox,
            """
            import asyncio
            kept = ctx.variables["secret"] * 2
            await asyncio.sleep(0.6)
            return {"status": "held"}
            """,
            context={"variables": {"secret": secret}},
            tenant="tenant-a",
        )
    )
    await asyncio.sleep(0.2)
    spy = await run(
        sandbox,
        f"""
        import gc, os
        needle = {secret[:9]!r}
        hits = [o for o in gc.get_objects() if isinstance(o, str) and needle in o and o != needle]
        hits += [s for s in ("LEAK",) if s in os.environ]
        try:
            os.listdir("/proc")
        except OSError as exc:
            hits.append(type(exc).__name__)
        return {{"status": [h for h in hits if "{secret[9:]}" in h] , "proc": hits[-1:]}}
        """,
        tenant="tenant-b",
    )
    held = await holder
    assert held.ok
    assert spy.ok, spy
    assert spy.value == {"status": [], "proc": ["FileNotFoundError"]}
    assert secret not in str(spy.logs)


# ---------------------------------------------------------------------------- bad output


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("return [1, 2]", "returned list"),
        ("return 'ok'", "returned str"),
        ("return None", "returned NoneType"),
        ("return {'x': float('nan')}", "not JSON"),
        ("return {'x': float('inf')}", "not JSON"),
        ("return {'x': {1, 2}}", "not JSON"),
        ("return {'x': object()}", "not JSON"),
        ("return {'x': 'x' * 100_000_000}", "larger than"),
        ("d = {}\nd['self'] = d\nreturn d", "not JSON"),
        ("return {'x': '\\ud800'}", "not JSON"),
    ],
    ids=[
        "list",
        "str",
        "none",
        "nan",
        "inf",
        "set",
        "object",
        "100MB",
        "cycle",
        "surrogate",
    ],
)
async def test_garbage_results_are_invalid_output(
    sandbox: PythonSandbox, body: str, why: str
) -> None:
    outcome = await run(sandbox, body, limits=Limits(memory_mb=256))
    assert outcome.error == "invalid_output", outcome
    assert outcome.stopped_by == "protocol"
    assert why in outcome.detail


@pytest.mark.parametrize(
    "raw",
    [
        "b'\\xff\\xff\\xff\\xff' + b'x' * 100",  # a frame header claiming 4 GiB
        "b'\\x00\\x00\\x00\\x05hello'",  # not JSON
        "len_prefixed(b'[1, 2]')",  # JSON, not an object
        'len_prefixed(b\'{"t": "result", "value": {"x": NaN}}\')',
        'len_prefixed(b\'{"t": "result", "value": [1]}\')',
        'len_prefixed(b\'{"t": "shell", "cmd": "id"}\')',
        'len_prefixed(b\'{"t": "result", "value": {"x": "\\xff"}}\')',  # not UTF-8
    ],
    ids=["huge-frame", "not-json", "not-object", "nan", "non-dict", "unknown-type", "not-utf8"],
)
async def test_forged_protocol_frames_are_rejected(sandbox: PythonSandbox, raw: str) -> None:
    outcome = await run(
        sandbox,
        f"""
        import os, struct
        def len_prefixed(payload):
            return struct.pack(">I", len(payload)) + payload
        os.write(4, {raw})
        import asyncio
        await asyncio.sleep(5)
        return {{"status": "late"}}
        """,
    )
    assert outcome.error == "invalid_output", outcome
    assert outcome.stopped_by == "protocol"
    assert outcome.timings["total_ms"] < 4000


async def test_c_level_output_does_not_corrupt_the_protocol(sandbox: PythonSandbox) -> None:
    outcome = await run(
        sandbox,
        """
        import os, ctypes
        os.write(1, b"\\x00\\x00\\x00\\x10{garbage on fd 1\\n")
        os.write(2, b"stderr line\\n")
        ctypes.CDLL(None).puts(b"from libc puts")
        return {"status": "ok"}
        """,
    )
    assert outcome.ok, outcome
    stdio = [log["message"] for log in outcome.logs if log["source"] == "stdio"]
    assert any("garbage on fd 1" in m for m in stdio)
    assert any("stderr line" in m for m in stdio)


async def test_exceptions_show_the_user_line_and_no_host_paths(sandbox: PythonSandbox) -> None:
    outcome = await run(sandbox, "x = 1\nraise ValueError('boom')")
    assert outcome.error == "exception"
    assert outcome.detail == "ValueError: boom (line 4)"
    assert outcome.stopped_by is None
    crash = await run(sandbox, "import ctypes\nctypes.string_at(0)\nreturn {}")
    assert crash.error == "crashed"
    assert "SIGSEGV" in crash.detail
    exited = await run(sandbox, "import os\nos._exit(3)")
    assert exited.error == "crashed"
    assert "code 3" in exited.detail
    for o in (outcome, crash, exited):
        assert "/sandbox" not in o.detail
        assert "worker.py" not in o.detail
