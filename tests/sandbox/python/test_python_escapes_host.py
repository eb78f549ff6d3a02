"""Issue 7 §6: host facts (kernel version, uptime, load, free memory, process count, disk) are not
readable from the sandbox, while ordinary code (``platform``, ``os.uname()``, httpx) keeps working.

Layers: ``seccomp`` (uname/sysinfo/statfs/fstatfs are refused with EPERM, whatever the route:
``posix``, ctypes, raw syscalls), ``mount-namespace`` (no /proc, /sys; /usr/lib/modules and /usr/src
empty), plus the zygote's fake ``os.uname()`` for code that only wants a platform name.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pysandbox_support import HOST, SKIP_REASON, fn, refuse_all

from voicefn.sandbox.python import Limits, Outcome, PythonSandbox
from voicefn.sandbox.python import policy as sandbox_policy

pytestmark = [
    pytest.mark.skipif(not HOST.full, reason=SKIP_REASON),
    pytest.mark.asyncio(loop_scope="module"),
]

QUICK = Limits(timeout_s=8.0, cpu_s=3.0, memory_mb=64)
REAL = os.uname()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sandbox() -> AsyncIterator[PythonSandbox]:
    sb = PythonSandbox(warm_workers=1)
    await sb.start()
    yield sb
    await sb.aclose()


async def run(sandbox: PythonSandbox, body: str) -> Outcome:
    return await sandbox.run(
        fn(body), "f", {}, {}, egress=refuse_all, limits=QUICK, tenant="host-facts"
    )


async def test_the_filter_does_not_allow_the_host_fact_syscalls() -> None:
    allowed = set(sandbox_policy.ALLOW_SYSCALLS)
    conditional = {name for _, name, _ in sandbox_policy.conditional_rules()}
    for name in sandbox_policy.HOST_FACT_SYSCALLS:
        assert name not in allowed | conditional


@pytest.mark.parametrize(
    ("call", "what"),
    [
        ("libc.syscall(63, buf)", "uname"),  # raw uname(2)
        ("libc.uname(buf)", "uname"),  # glibc's wrapper
        ("libc.syscall(99, buf)", "sysinfo"),  # uptime, load, RAM, process count
        ("libc.sysinfo(buf)", "sysinfo"),
        ("libc.syscall(137, b'/usr', buf)", "statfs"),  # disk size and free space
        ("libc.syscall(138, 0, buf)", "fstatfs"),
        ("libc.statvfs(b'/', buf)", "statvfs"),
    ],
)
async def test_host_fact_syscalls_get_eperm_from_seccomp(
    sandbox: PythonSandbox, call: str, what: str
) -> None:
    outcome = await run(
        sandbox,
        f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(4096)
        result = {call}
        return {{"status": result, "errno": ctypes.get_errno(), "leak": buf.raw.rstrip(b"\\0")[:64].hex()}}
        """,
    )
    assert outcome.ok, outcome
    assert outcome.value["status"] == -1, (what, outcome.value)
    assert outcome.value["errno"] == 1, (what, outcome.value)  # EPERM: layer seccomp
    assert outcome.value["leak"] == "", what  # the kernel wrote nothing into the buffer


@pytest.mark.parametrize(
    "body",
    [
        "import posix\nposix.uname()",
        "import os\nos.statvfs('/usr')",
        "import os\nos.fstatvfs(3)",
        "import shutil\nshutil.disk_usage('/')",
    ],
    ids=["posix-uname", "statvfs", "fstatvfs", "disk-usage"],
)
async def test_python_routes_to_host_facts_are_refused_by_seccomp(
    sandbox: PythonSandbox, body: str
) -> None:
    outcome = await run(sandbox, body + "\nreturn {'status': 'read'}")
    assert outcome.error == "exception", outcome
    assert "PermissionError" in outcome.detail
    assert outcome.stopped_by == "seccomp"


async def test_os_uname_and_platform_give_a_fake_answer_and_keep_working(
    sandbox: PythonSandbox,
) -> None:
    outcome = await run(
        sandbox,
        """
        import os, platform, sys
        return {
            "status": "ok",
            "uname": list(os.uname()),
            "platform": [platform.system(), platform.release(), platform.version(),
                         platform.node(), platform.machine()],
            "platform_str": platform.platform(),
            "sys": sys.platform,
            "cpus": os.cpu_count() is not None,
        }
        """,
    )
    assert outcome.ok, outcome
    value = outcome.value
    assert value["uname"] == ["Linux", "sandbox", "sandbox", "#1 sandbox", "x86_64"]
    assert value["platform"] == ["Linux", "sandbox", "#1 sandbox", "sandbox", "x86_64"]
    assert value["sys"] == "linux"
    text = str(value)
    assert REAL.release not in text
    assert REAL.version not in text
    assert REAL.nodename not in text


@pytest.mark.parametrize(
    "path",
    ["/proc/uptime", "/proc/loadavg", "/proc/meminfo", "/proc/version", "/sys/kernel"],
)
async def test_proc_and_sys_do_not_exist_in_the_mount_namespace(
    sandbox: PythonSandbox, path: str
) -> None:
    outcome = await run(sandbox, f"import os\nos.stat({path!r})\nreturn {{'status': 'there'}}")
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "mount-namespace"


async def test_usr_does_not_name_the_kernel(sandbox: PythonSandbox) -> None:
    outcome = await run(
        sandbox,
        """
        import os
        found = {}
        for d in ("/usr/lib/modules", "/usr/src"):
            try:
                found[d] = os.listdir(d)
            except OSError as exc:
                found[d] = type(exc).__name__
        return {"status": found}
        """,
    )
    assert outcome.ok, outcome
    for listing in outcome.value["status"].values():
        assert listing in ([], "FileNotFoundError")
    assert REAL.release not in str(outcome.value)
