"""Escape attempts against the JavaScript sandbox. Each one must be STOPPED, and each test's
name says which layer stops it (``Outcome.stopped_by`` where the layer reports itself)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from voicefn.egress import EgressDenied, EgressPolicy
from voicefn.sandbox.javascript import JavaScriptSandbox, Limits, Outcome
from voicefn.sandbox.javascript import _host as js_host

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

FAST = Limits(timeout_s=1.0)  # tests that need the wall clock to stop the function
# everything else: room for a busy 2-core machine (the verdict must not be a timeout)
ROOMY = Limits(timeout_s=15.0)
SMALL = Limits(timeout_s=10.0, memory_mb=64)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[JavaScriptSandbox]:
    sb = JavaScriptSandbox()
    await sb.start()
    yield sb
    await sb.aclose()


class PolicyEgress:
    """The engine's egress, as far as the policy goes: refuses what EgressPolicy() refuses and
    never touches the network (anything allowed would be answered with a canned 200)."""

    def __init__(self) -> None:
        self.policy = EgressPolicy()
        self.seen: list[str] = []
        self.allowed: list[str] = []

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.seen.append(request["url"])
        self.policy.check_url(request["url"])  # raises EgressDenied
        self.allowed.append(request["url"])
        return {"status": 200, "headers": [], "body": ""}


async def denied_as_dict(request: dict[str, Any]) -> dict[str, Any]:
    try:
        EgressPolicy().check_url(request["url"])
    except EgressDenied as exc:
        return {"error": f"egress denied: {exc}", "denied": True}
    return {"error": "this test egress has no network"}


async def no_egress(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no network in this test"}


async def run(sb: JavaScriptSandbox, body: str, limits: Limits = ROOMY, **kw: Any) -> Outcome:
    return await sb.run(
        f"async function main(data) {{\n{body}\n}}",
        "main",
        kw.pop("data", {}),
        egress=kw.pop("egress", no_egress),
        limits=limits,
        **kw,
    )


def assert_permission_stop(outcome: Outcome, needle: str) -> None:
    assert not outcome.ok, outcome
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "deno-permissions", outcome
    assert "NotCapable" in outcome.detail, outcome.detail
    assert needle in outcome.detail, outcome.detail


def assert_permission_stop_any(outcome: Outcome, needle: str) -> None:
    """Like assert_permission_stop, for module loading (it reports a TypeError)."""
    assert not outcome.ok, outcome
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "deno-permissions", outcome
    assert needle in outcome.detail, outcome.detail


# ----------------------------------------------------------------- Deno permissions ("none")


async def test_read_etc_passwd__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return await Deno.readTextFile('/etc/passwd')")
    assert_permission_stop(outcome, "read access")


async def test_read_own_files__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return Deno.readTextFileSync('/sandbox/worker.js')")
    assert_permission_stop(outcome, "read access")


async def test_env__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return Deno.env.get('HOME')")
    assert_permission_stop(outcome, "env access")
    outcome = await run(sandbox, "return Deno.env.toObject()")
    assert_permission_stop(outcome, "env access")
    outcome = await run(sandbox, "return process.env.PATH")
    assert_permission_stop(outcome, "env access")


async def test_deno_command__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(
        sandbox, "return new Deno.Command('/bin/sh', {args: ['-c', 'id']}).outputSync()"
    )
    assert_permission_stop(outcome, "run access")


async def test_node_child_process__blocked_module(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(
        sandbox,
        "const cp = await import('node:child_process'); return cp.execSync('id').toString()",
    )
    assert outcome.stopped_by == "blocked-module", outcome
    assert outcome.error == "exception"


async def test_node_child_process_through_a_data_module__blocked_module(
    sandbox: JavaScriptSandbox,
) -> None:
    # The import map applies inside data: modules too (Deno's run permission is behind it).
    outcome = await run(
        sandbox,
        "const cp = await import('data:text/javascript,export * from \"node:child_process\"');"
        "return cp.execSync('id').toString()",
    )
    assert outcome.stopped_by == "blocked-module", outcome


async def test_node_fs__blocked_module(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(
        sandbox, "const fs = await import('node:fs'); return fs.readFileSync('/etc/passwd', 'utf8')"
    )
    assert outcome.stopped_by == "blocked-module", outcome


async def test_node_fs_through_a_blob_module__blocked_module(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(
        sandbox,
        "const u = URL.createObjectURL(new Blob(['export * from \"node:fs\"'], "
        "{type: 'text/javascript'}));"
        "const fs = await import(u); return fs.readFileSync('/etc/passwd', 'utf8')",
    )
    assert outcome.stopped_by == "blocked-module", outcome


async def test_write_file__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "Deno.writeTextFileSync('/tmp/x', 'owned'); return 1")
    assert_permission_stop(outcome, "write access")


async def test_dlopen_ffi__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return Deno.dlopen('/lib/x86_64-linux-gnu/libc.so.6', {})")
    assert_permission_stop(outcome, "ffi access")


async def test_raw_socket_connect__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return await Deno.connect({hostname: '127.0.0.1', port: 22})")
    assert_permission_stop(outcome, "net access")
    outcome = await run(
        sandbox, "return await Deno.connect({transport: 'unix', path: '/sandbox/host.sock'})"
    )
    assert_permission_stop(outcome, "access")


async def test_websocket__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    code = """const ws = new WebSocket("ws://127.0.0.1:9/");
    return await new Promise((resolve, reject) => { ws.onerror = (e) => reject(new Error(e.message)); ws.onopen = () => resolve("open"); });"""
    outcome = await run(sandbox, code)
    assert_permission_stop(outcome, "net access")


async def test_sys_info__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return Deno.hostname()")
    assert_permission_stop(outcome, "sys access")
    outcome = await run(sandbox, "return Deno.osRelease()")
    assert_permission_stop(outcome, "sys access")
    outcome = await run(sandbox, "return Deno.loadavg()")
    assert_permission_stop(outcome, "sys access")


@pytest.mark.parametrize(
    "trick",
    [
        "Function('return this')().Deno.readTextFileSync('/etc/passwd')",
        "(async () => {}).constructor('return Deno')().then(D => D.readTextFileSync('/etc/passwd'))",
        "({}).constructor.constructor('return globalThis')().Deno.readTextFileSync('/etc/passwd')",
        "[].map.constructor('return this.Deno')().readFileSync('/etc/passwd')",
        "(0, eval)('Deno').readTextFileSync('/etc/passwd')",
        "new (Object.getPrototypeOf(function*(){}).constructor)('yield Deno.readTextFileSync(\"/etc/passwd\")')().next()",
    ],
)
async def test_function_constructor_tricks__deno_permissions(
    sandbox: JavaScriptSandbox, trick: str
) -> None:
    outcome = await run(sandbox, f"return await {trick}")
    assert_permission_stop(outcome, "read access")


async def test_deno_internals_reach_nothing__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    code = """const core = Deno[Deno.internal]?.core;
    const ops = core?.ops ?? {};
    for (const name of Object.keys(ops)) {
      if (/read|open|env|spawn|run|exec|ffi|dlopen/i.test(name)) {
        try { ops[name]('/etc/passwd'); } catch (e) { if (!/NotCapable|TypeError|Error/.test(String(e))) throw e; }
      }
    }
    return Deno.readTextFileSync('/etc/passwd');"""
    outcome = await run(sandbox, code)
    assert_permission_stop(outcome, "read access")


# ----------------------------------------------------------------- no code from elsewhere


async def test_dynamic_import_https__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    # The Worker has no import permission; behind that, the process runs with --no-remote and
    # (isolated) has no network namespace routes at all.
    outcome = await run(sandbox, "return await import('https://deno.land/std/fs/mod.ts')")
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "deno-permissions", outcome
    assert "import access" in outcome.detail


async def test_dynamic_import_npm__deno_no_remote(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return await import('npm:left-pad')")
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "deno-no-remote", outcome
    outcome = await run(sandbox, "return await import('jsr:@std/fs')")
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "deno-permissions", outcome


async def test_static_import_https__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    code = "import x from 'https://esm.sh/lodash';\nexport async function main() { return x }"
    outcome = await sandbox.run(code, "main", {}, egress=no_egress, limits=ROOMY)
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "deno-permissions", outcome
    assert "import access" in outcome.detail


async def test_import_host_file__deno_permissions(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return await import('file:///etc/passwd')")
    assert_permission_stop_any(outcome, "read access")
    outcome = await run(sandbox, "return await import('/sandbox/host.js')")
    assert_permission_stop_any(outcome, "read access")
    outcome = await run(
        sandbox,
        "return (await import('data:text/javascript,export default Deno.readTextFileSync(\"/etc/passwd\")')).default",
    )
    assert_permission_stop_any(outcome, "read access")


async def test_nested_worker__removed(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return new Worker('data:text/javascript,1', {type: 'module'})")
    assert outcome.error == "exception"
    assert "Worker is not defined" in outcome.detail


# ----------------------------------------------------------------- network: only via egress

PRIVATE_URLS = [
    "http://127.0.0.1:8080/admin",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.1/",
    "http://2130706433/",
    "http://[::ffff:127.0.0.1]/",
    "http://localhost:2024/",
    "http://0x7f000001/",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_fetch_private_address__egress_policy(sandbox: JavaScriptSandbox, url: str) -> None:
    egress = PolicyEgress()
    outcome = await run(
        sandbox, "return (await fetch(data.url)).status", data={"url": url}, egress=egress
    )
    assert not outcome.ok, outcome
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "egress-policy", outcome
    assert "refused by the egress policy" in outcome.detail
    assert egress.seen
    assert not egress.allowed
    assert outcome.http[0]["error"].startswith("refused by the egress policy")


@pytest.mark.parametrize("url", PRIVATE_URLS[:5])
async def test_axios_private_address__egress_policy(sandbox: JavaScriptSandbox, url: str) -> None:
    outcome = await run(
        sandbox, "return (await axios.get(data.url)).data", data={"url": url}, egress=denied_as_dict
    )
    assert not outcome.ok, outcome
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by == "egress-policy", outcome


async def test_caught_refusal_still_names_the_layer__egress_policy(
    sandbox: JavaScriptSandbox,
) -> None:
    code = "try { await axios.post('http://169.254.169.254/', {}) } catch (e) { return 'caught' }"
    outcome = await run(sandbox, code, egress=PolicyEgress())
    assert outcome.ok
    assert outcome.value == "caught"
    assert outcome.stopped_by == "egress-policy"


async def test_too_many_requests__request_limit(sandbox: JavaScriptSandbox) -> None:
    egress = PolicyEgress()
    code = (
        "for (let i = 0; i < 50; i++) { await fetch('https://api.example.com/' + i) } return 'done'"
    )
    outcome = await run(
        sandbox, code, egress=egress, limits=Limits(timeout_s=5, max_http_requests=3)
    )
    assert outcome.error == "too_many_requests", outcome
    assert outcome.stopped_by == "request-limit", outcome
    assert len(egress.allowed) == 3


# ----------------------------------------------------------------- time


async def test_infinite_loop__wall_clock(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "while (true) {}", FAST, tenant="loops")
    assert outcome.error == "timeout", outcome
    assert outcome.stopped_by == "wall-clock", outcome
    assert outcome.timings["run_ms"] < 8000  # stopped at its 1 s limit, not left running
    after = await run(sandbox, "return 'alive'", tenant="loops")
    assert after.ok
    assert after.value == "alive"


async def test_busy_loop_inside_a_promise__wall_clock(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(
        sandbox,
        "await Promise.resolve().then(() => { while (true) {} }); return 1",
        FAST,
        tenant="loops",
    )
    assert outcome.error == "timeout", outcome
    assert outcome.stopped_by == "wall-clock", outcome
    outcome = await run(sandbox, "await new Promise(() => { for (;;) {} })", FAST, tenant="loops")
    assert outcome.error == "timeout", outcome
    assert outcome.stopped_by == "wall-clock", outcome


async def test_never_settling_promise__wall_clock(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "await new Promise(() => {})", FAST, tenant="loops")
    assert outcome.error == "timeout", outcome
    assert outcome.stopped_by == "wall-clock", outcome


async def test_slow_egress_is_cut_at_the_deadline__wall_clock(sandbox: JavaScriptSandbox) -> None:
    cancelled = asyncio.Event()

    async def hanging(request: dict[str, Any]) -> dict[str, Any]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"status": 200, "headers": [], "body": ""}

    outcome = await run(
        sandbox, "return (await fetch('https://slow.example.com/')).status", FAST, egress=hanging
    )
    assert outcome.error == "timeout", outcome
    assert outcome.stopped_by == "wall-clock", outcome
    assert cancelled.is_set()


async def test_exit_attempts_do_not_hang(sandbox: JavaScriptSandbox) -> None:
    for body in ("Deno.exit(0)", "self.close()", "process.exit(1)"):
        outcome = await run(sandbox, body)
        assert outcome.error == "exception", (body, outcome)
        assert "not available" in outcome.detail, (body, outcome)


# ----------------------------------------------------------------- memory


async def test_heap_bomb__v8_heap_or_cgroup_and_other_tenant_untouched(
    sandbox: JavaScriptSandbox,
) -> None:
    bomb = (
        "const a = []; while (true) a.push({x: Math.random(), s: 'x'.repeat(64) + Math.random()});"
    )
    other = "await new Promise(r => setTimeout(r, 1500)); return 'other tenant fine'"
    bombed, survivor = await asyncio.gather(
        run(sandbox, bomb, limits=SMALL, tenant="bomber"),
        run(sandbox, other, limits=Limits(timeout_s=10), tenant="bystander"),
    )
    assert bombed.error == "memory", bombed
    assert bombed.stopped_by in ("v8-heap", "cgroup-memory"), bombed
    assert survivor.ok, survivor
    assert survivor.value == "other tenant fine", survivor
    right_after = await run(sandbox, "return 'next'", tenant="bystander")
    assert right_after.ok
    # The bomber's process was replaced: its next job runs (fresh process, no state).
    again = await run(sandbox, "return typeof globalThis.a", limits=SMALL, tenant="bomber")
    assert again.ok, again
    assert again.value == "undefined", again


async def test_array_buffer_bomb__cgroup_memory(sandbox: JavaScriptSandbox) -> None:
    if sandbox.memory_layer != "cgroup-memory":
        pytest.skip("needs a writable cgroup v1 memory controller (root)")
    bomb = "const a = []; while (true) a.push(new Uint8Array(16 << 20).fill(7));"
    outcome = await run(sandbox, bomb, limits=SMALL, tenant="ab-bomber")
    assert outcome.error == "memory", outcome
    assert outcome.stopped_by == "cgroup-memory", outcome
    other = await run(sandbox, "return 'ok'", tenant="bystander")
    assert other.ok


async def test_array_buffer_bomb_without_cgroup__rss_watchdog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(js_host.CgroupParents, "detect", classmethod(lambda cls: None))
    async with JavaScriptSandbox() as sb:
        assert sb.memory_layer == "rss-watchdog"
        bomb = "const a = []; while (true) a.push(new Uint8Array(16 << 20).fill(7));"
        outcome = await run(sb, bomb, limits=Limits(timeout_s=10, memory_mb=32))
        assert outcome.error == "memory", outcome
        assert outcome.stopped_by == "rss-watchdog", outcome
        after = await run(sb, "return 1")
        assert after.ok


# ----------------------------------------------------------------- state between jobs


async def test_global_state_does_not_survive__fresh_worker(sandbox: JavaScriptSandbox) -> None:
    await run(
        sandbox, "globalThis.secret = 'tenant data'; var leaked = 1; return 1", tenant="state"
    )
    outcome = await run(
        sandbox, "return [typeof globalThis.secret, typeof globalThis.leaked]", tenant="state"
    )
    assert outcome.value == ["undefined", "undefined"]


async def test_prototype_pollution_does_not_survive__fresh_worker(
    sandbox: JavaScriptSandbox,
) -> None:
    polluting = """Object.prototype.isAdmin = true;
    Array.prototype.push = function () { return 'hijacked' };
    JSON.stringify = () => '"hijacked"';
    axios.defaults.baseURL = 'http://evil.example';
    axios.interceptors.request.use((c) => { c.url = 'http://evil.example/'; return c });
    _.get = () => 'hijacked';
    console.log = () => {};
    return 1"""
    first = await run(sandbox, polluting, tenant="state")
    assert first.ok
    egress = PolicyEgress()
    outcome = await run(
        sandbox,
        """const a = []; a.push(1);
        await axios.get('https://api.example.com/x');
        console.log('still logging');
        return [({}).isAdmin === undefined, a.length, _.get({k: 1}, 'k')]""",
        tenant="state",
        egress=egress,
    )
    assert outcome.value == [True, 1, 1], outcome
    assert egress.allowed == ["https://api.example.com/x"]
    assert outcome.logs == [{"level": "log", "message": "still logging", "source": "function"}]


# ----------------------------------------------------------------- output and odd values


async def test_huge_output__output_limit(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, "return 'x'.repeat(5 * 1024 * 1024)", limits=Limits(timeout_s=5))
    assert outcome.error == "invalid_output", outcome
    assert not outcome.ok, outcome
    assert "larger than" in outcome.detail
    assert outcome.stopped_by == "output-limit"
    outcome = await run(sandbox, "return '\\u00e9'.repeat(600000)", limits=Limits(timeout_s=5))
    assert outcome.error == "invalid_output", outcome
    assert outcome.stopped_by == "output-limit", outcome


async def test_huge_log_line_is_truncated(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(
        sandbox, "console.log('y'.repeat(10 << 20)); return 1", limits=Limits(timeout_s=5)
    )
    assert outcome.ok
    assert len(outcome.logs[0]["message"]) <= 4001


async def test_deeply_nested_output_is_refused(sandbox: JavaScriptSandbox) -> None:
    code = "let v = []; for (let i = 0; i < 200000; i++) v = [v]; return v"
    outcome = await run(sandbox, code, limits=Limits(timeout_s=5))
    assert outcome.error == "invalid_output", outcome


@pytest.mark.parametrize(
    ("thrown", "detail"),
    [
        ("'a plain string'", "a plain string"),
        ("42", "42"),
        ("null", "null"),
        ("undefined", "undefined was thrown"),
        ("{code: 7}", '{"code":7}'),
        ("Symbol('s')", "Symbol(s)"),
        (
            "{toString() { throw new Error('nope') }, toJSON() { throw 1 }}",
            "an unprintable value was thrown",
        ),
        (
            "new Proxy({}, {get() { throw 1 }, getPrototypeOf() { throw 2 }, ownKeys() { throw 3 }})",
            "an unprintable value was thrown",
        ),
        ("Object.create(null)", "{}"),
    ],
)
async def test_throwing_non_error_values(
    sandbox: JavaScriptSandbox, thrown: str, detail: str
) -> None:
    outcome = await run(sandbox, f"throw {thrown}")
    assert outcome.error == "exception", outcome
    assert not outcome.ok, outcome
    assert outcome.detail == detail


async def test_unhandled_rejection_elsewhere_is_contained(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(
        sandbox,
        "Promise.reject(new Error('floating')); await new Promise(r => setTimeout(r, 50)); return 1",
    )
    assert not outcome.ok
    assert outcome.error == "exception"
    assert "floating" in outcome.detail
    after = await run(sandbox, "return 2")
    assert after.ok
    assert after.value == 2


async def test_no_stdio_and_forged_messages_are_only_requests(sandbox: JavaScriptSandbox) -> None:
    # The process's stdout/stderr are not the protocol; the function cannot even write to them
    # (stderr is kept for diagnosis, so it must not be able to plant "out of memory" there).
    outcome = await run(
        sandbox,
        "return [typeof Deno.stdout, typeof Deno.stderr, typeof Deno.stdin,"
        " typeof process.stdout, typeof process.stderr, typeof process._rawDebug]",
    )
    assert outcome.value == ["undefined"] * 6, outcome
    code = """postMessage({t: 'result', id: 1, ok: true, json: '"forged"'});
    postMessage({t: 'done', ok: true, json: '"forged too"', source: 'sandbox'});
    postMessage({t: 'fetch', rid: 1, method: 'GET', url: 'http://10.0.0.1/', headers: [], body: ''});
    await new Promise(r => setTimeout(r, 100));
    return 'real'"""
    egress = PolicyEgress()
    outcome = await run(sandbox, code, egress=egress)
    # A forged "done" ends the job as the host's own would (the function chose its value), but
    # a forged fetch message is still just a request through the egress policy.
    assert outcome.ok, outcome
    assert outcome.value in ("forged too", "real"), outcome
    assert not egress.allowed


# ----------------------------------------------------------------- the process boundary


def _deno_pid(sandbox: JavaScriptSandbox, tenant: str) -> int:
    process = sandbox._processes[(tenant, Limits().memory_mb)]
    assert process.proc is not None
    todo = [process.proc.pid]
    while todo:
        pid = todo.pop()
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = ""
        if exe.endswith("deno"):
            return pid
        for task in os.listdir(f"/proc/{pid}/task"):
            todo += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    raise AssertionError("no deno process found")


def _sandbox_view(pid: int) -> dict[str, Any]:
    """What the tenant's Deno process sees, read from the host's /proc (blocking, so sync)."""
    root = Path(f"/proc/{pid}/root")
    return {
        "root": {p.name for p in root.iterdir()},
        "sandbox": {p.name for p in (root / "sandbox").iterdir()},
        "etc": (root / "etc").exists(),
        "work": (root / "work").exists(),
        "procfs": (root / "proc" / "1").exists(),
        "net_dev": Path(f"/proc/{pid}/net/dev").read_text(),
        "status": Path(f"/proc/{pid}/status").read_text(),
    }


@pytest_asyncio.fixture(loop_scope="module")
async def view(sandbox: JavaScriptSandbox) -> dict[str, Any]:
    outcome = await run(sandbox, "return 1", tenant="inspect")
    assert outcome.ok
    try:
        return _sandbox_view(_deno_pid(sandbox, "inspect"))
    except PermissionError:
        pytest.skip("needs root to look inside the sandbox")


async def test_process_sees_no_host_files__mount_namespace(view: dict[str, Any]) -> None:
    assert view["root"] <= {"sandbox", "lib", "lib64", "usr", "proc"}, view["root"]
    assert view["sandbox"] == {
        "deno",
        "host.js",
        "worker.js",
        "vendor",
        "runtime",
        "host.sock",
        "imports.json",
    }
    assert not view["etc"]
    assert not view["work"]
    assert not view["procfs"]  # no procfs, only a /proc/self/exe link


async def test_process_has_no_network__network_namespace(view: dict[str, Any]) -> None:
    lines = view["net_dev"].splitlines()[2:]
    assert {line.split(":")[0].strip() for line in lines} == {"lo"}


async def test_process_runs_unprivileged__uid(view: dict[str, Any]) -> None:
    status = view["status"].splitlines()
    uid_line = next(line for line in status if line.startswith("Uid:"))
    if os.geteuid() == 0:
        assert uid_line.split()[1:] == ["65534"] * 4
    else:
        assert uid_line.split()[1] == str(os.geteuid())
    cap_line = next(line for line in status if line.startswith("CapEff:"))
    assert int(cap_line.split()[1], 16) == 0
