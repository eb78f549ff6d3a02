"""Latency of the Python and JavaScript sandboxes against the same function run without one.

    python benchmarks/sandbox_latency.py [--calls N] [--cold N] [--json] [--lang python|javascript|both]

Scenarios, per language:

* cold: a new tenant's first call (``--cold`` samples, each on a new tenant). Python has two:
  with a warm spare worker ready (the engine's default pool, ``warm_workers=2``) and with no spare
  (``warm_workers=0``: bubblewrap + python + imports + warm-up + first fork on the call's path).
  JavaScript: the tenant's Deno process starts in bubblewrap (libraries loaded, Worker warmed).
* warm trivial: a function that only builds its result, on a tenant whose worker is warm.
* warm one HTTP request: a function that makes one GET to a loopback server (``_loopback_server.py``
  in its own process). The sandbox's request goes out through the engine's own egress callback
  (``CodeRunner.egress`` of an ``Executor`` allowed to reach 127.0.0.1: its policy-checked,
  pooled ``httpx.AsyncClient``).

The floor is the SAME source run without a sandbox:

* Python: compiled and awaited in this process (per call, as the sandbox does), with a minimal
  stand-in ``RunContext`` (``ctx.variables``, ``ctx.call``, ``ctx.logger``, ``ctx.http``), a
  module-level ``logger`` and ``httpx``; ``ctx.http`` is a normal pooled ``httpx.AsyncClient``.
  The cold rows' floor is that same in-process call (nothing is per tenant in-process).
* JavaScript: a plain ``deno run`` process (no bubblewrap, no Worker) that loaded the same
  vendored axios/moment/lodash as globals and runs each job the way the sandbox's Worker does
  (``AsyncFunction`` + ``JSON.parse(data)``), with real ``fetch`` allowed to 127.0.0.1 only.
  Timed from this process (a JSON line on its stdin, the answer on its stdout). The cold rows'
  floor is a fresh such process started for the call.

The HTTP functions: Python ``await ctx.http.get(URL, params=...)``, JavaScript
``await axios.get(URL, {params})`` (in the sandbox a fresh Worker, so a fresh axios, per job).

Sandbox and floor calls alternate (ABBA). Each sandbox call is followed by ``--gap-ms`` of quiet
(default 20 ms Python, 250 ms JavaScript; one voice agent calls a function every few seconds at
most): the JavaScript host loads the next Worker's libraries after each job (100-200 ms on a
2-core VM; a job arriving earlier waits for it), the Python zygote pre-forks the next child.
p50 is the median, p99 the nearest-rank 99th percentile (with few samples, close to the max);
all times are ``time.perf_counter_ns`` around the awaited call. The text output also shows the
sandbox's own p50 breakdown (``Outcome.timings``: wait/run, and the egress request's ms).

Targets (from the issue): p50 < 20 ms for a function that makes one HTTP request on loopback,
< 10 ms for a trivial one, for the warm sandboxed call. They are printed as information; the exit
status is 0 whether or not they are met (1 if a call failed or a sandbox could not start). No new
sample starts after ``--max-seconds``; the run is cancelled 60 s after that.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import contextlib
import gc
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import voicefn

SERVER = Path(__file__).with_name("_loopback_server.py")
TRIVIAL_TARGET_MS = 10.0
HTTP_TARGET_MS = 20.0
HARD_STOP_GRACE_S = 60.0
# Pause after each measured sandbox call: the Python zygote pre-forks the next child during a
# call; the JavaScript host loads the next Worker's libraries after it (~100-200 ms here).
DEFAULT_GAP_MS = {"python": 20.0, "javascript": 250.0}

# ------------------------------------------------------------------------------ functions

PY_TRIVIAL = '''
async def greet(ctx: RunContext, name: str) -> dict:
    """Say hello."""
    return {"status": "success", "greeting": f"hello {name}", "call": ctx.call.call_sid}
'''

PY_HTTP = '''
async def check_order(ctx: RunContext, order_id: str) -> dict:
    """Look an order up with one GET."""
    response = await ctx.http.get(URL, params={"order_id": order_id})
    response.raise_for_status()
    order = response.json()
    logger.debug("order %s: %s", order_id, order["status"])
    return {"status": "success", "order": order}
'''

JS_TRIVIAL = """
async function greet(data) {
  return { status: "success", greeting: `hello ${data.name}`, call: data.call.call_sid };
}
"""

JS_HTTP = """
async function checkOrder(data) {
  const response = await axios.get(URL, { params: { order_id: data.order_id } });
  return { status: "success", order: response.data };
}
"""

# The JavaScript floor: a plain Deno process, the sandbox Worker's globals and job code path.
JS_FLOOR = r"""
const vendor = Deno.args[0];
const { default: axios } = await import(vendor + "axios.js");
const { default: moment } = await import(vendor + "moment.js");
await import(vendor + "lodash.js");
globalThis.axios = axios;
globalThis.moment = moment;
const AsyncFunction = (async function () {}).constructor;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function runJob(msg) {
  const entry = msg.entrypoint;
  const factory = new AsyncFunction(
    "module",
    "exports",
    `${msg.code}\n;return (typeof ${entry} === "function") ? ${entry} : undefined;`,
  );
  const module = { exports: {} };
  let fn = await factory(module, module.exports);
  if (typeof fn !== "function") fn = module.exports?.[entry];
  const value = await fn(JSON.parse(msg.data));
  return { ok: true, json: value === undefined ? "null" : JSON.stringify(value) };
}

async function write(obj) {
  const bytes = encoder.encode(JSON.stringify(obj) + "\n");
  let off = 0;
  while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
}

let buf = "";
for await (const chunk of Deno.stdin.readable) {
  buf += decoder.decode(chunk, { stream: true });
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    let reply;
    try {
      reply = await runJob(JSON.parse(line));
    } catch (err) {
      reply = { ok: false, detail: String(err?.stack ?? err).slice(0, 500) };
    }
    await write(reply);
  }
}
"""


def _check_value(value: Any, http: bool) -> str | None:
    """None if ``value`` is what the benchmark functions return, else what is wrong."""
    if not isinstance(value, dict) or value.get("status") != "success":
        return f"unexpected result {str(value)[:200]}"
    if http and not (isinstance(value.get("order"), dict) and value["order"].get("order_id")):
        return f"unexpected HTTP result {str(value)[:200]}"
    return None


# ------------------------------------------------------------------------------ figures


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(math.ceil(p / 100 * len(sorted_values)) - 1, 0)]


def summary(samples_ns: list[int]) -> dict[str, Any] | None:
    if not samples_ns:
        return None
    ms = sorted(v / 1e6 for v in samples_ns)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "min_ms": round(ms[0], 3),
        "max_ms": round(ms[-1], 3),
    }


@dataclass
class Row:
    language: str
    scenario: str
    target_ms: float | None = None
    sandbox_ns: list[int] = field(default_factory=list)
    floor_ns: list[int] = field(default_factory=list)
    floor_note: str = ""
    # What the sandbox itself reported per measured call (Outcome.timings, egress request ms).
    reported: dict[str, list[float]] = field(default_factory=dict)

    def report(self, outcome: Any) -> None:
        for key, value in outcome.timings.items():
            self.reported.setdefault(key, []).append(float(value))
        for request in outcome.http:
            if isinstance(request.get("ms"), int | float):
                self.reported.setdefault("egress_ms", []).append(float(request["ms"]))

    def to_json(self) -> dict[str, Any]:
        sandbox, floor = summary(self.sandbox_ns), summary(self.floor_ns)
        added = round(sandbox["p50_ms"] - floor["p50_ms"], 3) if sandbox and floor else None
        met = None
        if self.target_ms is not None and sandbox is not None:
            met = sandbox["p50_ms"] < self.target_ms
        return {
            "language": self.language,
            "scenario": self.scenario,
            "sandbox": sandbox,
            "floor": floor,
            "floor_note": self.floor_note or None,
            "added_p50_ms": added,
            "target_p50_ms": self.target_ms,
            "target_met": met,
            "sandbox_reported_p50_ms": {
                key: round(statistics.median(values), 3) for key, values in self.reported.items()
            },
        }


@dataclass
class Run:
    deadline: float  # time.monotonic(): no new sample after it
    failures: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    truncated: bool = False

    def fail(self, what: str) -> None:
        self.failures[what] = self.failures.get(what, 0) + 1

    def out_of_time(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.truncated = True
            return True
        return False


Call = Callable[[], Awaitable[str | None]]  # None when the call returned the expected result


async def timed(call: Call, samples: list[int], run: Run, label: str) -> None:
    t0 = time.perf_counter_ns()
    problem = await call()
    elapsed = time.perf_counter_ns() - t0
    if problem is None:
        samples.append(elapsed)
    else:
        run.fail(f"{label}: {problem}"[:300])


async def interleaved(
    row: Row, sandbox: Call, floor: Call | None, calls: int, gap_s: float, run: Run
) -> None:
    """``calls`` sandbox calls and as many floor calls, alternating which goes first (ABBA).

    ``gap_s`` follows every sandbox call (the sandbox readies its next child or Worker then), a
    short pause every floor call, so each call starts at least ``gap_s`` after the last sandbox
    call: S gap F pause | F pause S gap | S gap F pause | ...
    """
    gc.collect()
    pause_s = min(gap_s, 0.01)
    for i in range(calls):
        if run.out_of_time():
            return
        pair: list[tuple[Call, list[int], str, float]] = [
            (sandbox, row.sandbox_ns, "sandbox", gap_s)
        ]
        if floor is not None:
            pair.append((floor, row.floor_ns, "floor", pause_s))
        if i % 2:
            pair.reverse()
        for call, samples, side, sleep_s in pair:
            await timed(call, samples, run, f"{row.language} {row.scenario} {side}")
            await asyncio.sleep(sleep_s)


# ------------------------------------------------------------------------------ server


class LoopbackServer:
    """``_loopback_server.py`` in its own process; closing its stdin stops it."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self, max_seconds: float) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SERVER),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--max-seconds",
            str(max_seconds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        try:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), 15)).decode().strip()
        except TimeoutError:
            line = ""
        if not line.startswith("PORT "):
            await self.close()
            raise RuntimeError(f"the loopback server did not start (said {line!r})")
        self.port = int(line.split()[1])

    async def close(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


# ------------------------------------------------------------------------------ Python


class _StandInCall:
    """``ctx.call`` outside the sandbox."""

    def __init__(self, data: dict[str, Any]) -> None:
        for key in ("agent_id", "call_sid", "execution_id", "from_number", "to_number"):
            setattr(self, key, data.get(key))


class StandInRunContext:
    """A minimal ``RunContext`` for the in-process floor: variables, call, logger, http."""

    def __init__(
        self,
        variables: dict[str, Any],
        call: dict[str, Any],
        logger: logging.Logger,
        http: httpx.AsyncClient,
    ) -> None:
        self.variables = variables
        self.userdata = variables
        self.call = _StandInCall(call)
        self.logger = logger
        self.http = http


def call_info(tenant: str) -> dict[str, Any]:
    return {
        "agent_id": tenant,
        "call_sid": "CA0123456789",
        "execution_id": "ex-1",
        "from_number": "+15550000001",
        "to_number": "+15550000002",
    }


class PythonFloor:
    """The same source, compiled and awaited in this process (per call, like the sandbox)."""

    def __init__(self) -> None:
        self.logger = logging.Logger("function", logging.DEBUG)
        self.logger.addHandler(logging.NullHandler())
        self.client = httpx.AsyncClient(timeout=10.0, follow_redirects=True, trust_env=False)

    async def run(
        self, code: str, entrypoint: str, arguments: dict[str, Any], context: dict[str, Any]
    ) -> Any:
        ctx = StandInRunContext(
            dict(context.get("variables") or {}),
            context.get("call") or {},
            self.logger,
            self.client,
        )
        namespace: dict[str, Any] = {
            "__name__": "__function__",
            "__builtins__": builtins,
            "RunContext": StandInRunContext,
            "httpx": httpx,
            "logger": self.logger,
        }
        exec(compile(code, "<function>", "exec", dont_inherit=True), namespace)
        return await namespace[entrypoint](ctx, **arguments)

    async def aclose(self) -> None:
        await self.client.aclose()


async def bench_python(
    args: argparse.Namespace, url: str, egress: Any, run: Run, rows: list[Row]
) -> None:
    try:
        from voicefn.sandbox.python import PythonSandbox, SandboxUnavailable
    except ImportError as exc:
        run.fail(f"python sandbox could not be imported: {exc}"[:400])
        return
    gap_s = (args.gap_ms if args.gap_ms is not None else DEFAULT_GAP_MS["python"]) / 1000
    http_code = PY_HTTP.replace("URL", repr(url))
    trivial = (PY_TRIVIAL, "greet", {"name": "Ada"}, False)
    one_get = (http_code, "check_order", {"order_id": "ORD-1"}, True)
    floor = PythonFloor()
    # The engine's pool as CodeRunner builds it (PythonSandbox(mode=...)): two warm spares.
    sandbox = PythonSandbox(mode=args.mode)
    cold_sandbox = PythonSandbox(mode=args.mode, warm_workers=0)

    def sandbox_call(
        sb: PythonSandbox, fn: tuple[str, str, dict[str, Any], bool], tenant: str, row: Row | None
    ) -> Call:
        code, entry, arguments, http = fn
        context = {"call": call_info(tenant), "variables": {"plan": "gold"}}

        async def call() -> str | None:
            outcome = await sb.run(code, entry, arguments, context, egress=egress, tenant=tenant)
            if not outcome.ok:
                return f"{outcome.error}: {outcome.detail[:200]}"
            if row is not None:
                row.report(outcome)
            return _check_value(outcome.value, http)

        return call

    def floor_call(fn: tuple[str, str, dict[str, Any], bool]) -> Call:
        code, entry, arguments, http = fn
        context = {"call": call_info("floor"), "variables": {"plan": "gold"}}

        async def call() -> str | None:
            try:
                value = await floor.run(code, entry, arguments, context)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return _check_value(value, http)

        return call

    try:
        try:
            started = time.perf_counter()
            await sandbox.start()
            await cold_sandbox.start()
        except SandboxUnavailable as exc:
            run.fail(f"python sandbox unavailable: {exc}"[:400])
            return
        run.notes.append(
            f"python: both sandboxes' start() (host probes, 2 warm spares) took "
            f"{time.perf_counter() - started:.2f} s, before any measurement"
        )
        floor_trivial = floor_call(trivial)
        for _ in range(5):  # the floor's code paths (and its connection) warm, like the sandbox's
            await floor_trivial()
            await floor_call(one_get)()

        # Cold, no spare: the tenant's worker starts on its first call's path.
        row = Row("python", "cold: new tenant, no warm spare", floor_note="in-process call")
        rows.append(row)
        for i in range(args.cold):
            if run.out_of_time():
                break
            call = sandbox_call(cold_sandbox, trivial, f"cold-nospare-{i}", row)
            await timed(call, row.sandbox_ns, run, "python cold (no spare) sandbox")
            await timed(floor_trivial, row.floor_ns, run, "python cold floor")
        await cold_sandbox.aclose()
        cold_s = statistics.median(row.sandbox_ns) / 1e9 if row.sandbox_ns else 0.3

        # Cold, spare ready: the tenant takes a warm spare (and the pool starts the next spare
        # right then, on the same CPUs).
        row = Row("python", "cold: new tenant, warm spare ready", floor_note="in-process call")
        rows.append(row)
        settle_s = min(max(3 * cold_s, 0.4), 3.0)
        for i in range(args.cold):
            await asyncio.sleep(settle_s)  # the previous sample's replacement spare is up
            if run.out_of_time():
                break
            call = sandbox_call(sandbox, trivial, f"cold-spare-{i}", row)
            await timed(call, row.sandbox_ns, run, "python cold (spare) sandbox")
            await timed(floor_trivial, row.floor_ns, run, "python cold floor")
        await asyncio.sleep(settle_s)

        # Warm: one tenant keeps its worker; a few unmeasured calls first.
        for label, fn, target in (
            ("warm: trivial", trivial, TRIVIAL_TARGET_MS),
            ("warm: one HTTP GET (loopback)", one_get, HTTP_TARGET_MS),
        ):
            row = Row("python", label, target_ms=target, floor_note="in-process call")
            rows.append(row)
            fl = floor_call(fn)
            warm_up = sandbox_call(sandbox, fn, "warm", None)
            for _ in range(5):
                await warm_up()
                await fl()
                await asyncio.sleep(gap_s)
            await interleaved(
                row, sandbox_call(sandbox, fn, "warm", row), fl, args.calls, gap_s, run
            )
    finally:
        await cold_sandbox.aclose()
        await sandbox.aclose()
        await floor.aclose()


# ------------------------------------------------------------------------------ JavaScript


def js_vendor_dir() -> Path | None:
    import voicefn.sandbox.javascript as js

    vendor = Path(js.__file__).resolve().parent / "vendor"
    ok = all((vendor / name).is_file() for name in ("axios.js", "moment.js", "lodash.js"))
    return vendor if ok else None


def deno_binary() -> str | None:
    with contextlib.suppress(ImportError, FileNotFoundError, AttributeError):
        import deno  # type: ignore[import-untyped]

        path = str(deno.find_deno_bin())
        if os.access(path, os.X_OK):
            return path
    venv = Path(sys.executable).parent / "deno"
    if os.access(venv, os.X_OK):
        return str(venv)
    return shutil.which("deno")


class DenoFloor:
    """A plain ``deno run`` process: no bubblewrap, no Worker; one JSON line per job."""

    def __init__(self, deno: str, script: Path, vendor: Path, port: int, denodir: Path) -> None:
        self.argv = [
            deno,
            "run",
            "--no-prompt",
            "--no-remote",
            "--no-npm",
            "--no-config",
            "--no-lock",
            "--no-check",
            f"--allow-read={script},{vendor}",
            f"--allow-net=127.0.0.1:{port}",
            str(script),
            vendor.as_uri() + "/",
        ]
        self.env = {
            "PATH": "/usr/bin:/bin",
            "NO_COLOR": "1",
            "DENO_DIR": str(denodir),
            "DENO_NO_UPDATE_CHECK": "1",
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            cwd="/",
            env=self.env,
        )

    async def run(self, code: str, entrypoint: str, data: dict[str, Any]) -> Any:
        proc = self.proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        msg = {"code": code, "entrypoint": entrypoint, "data": json.dumps(data)}
        proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        if not line:
            raise RuntimeError("the floor Deno process exited")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(str(reply.get("detail"))[:300])
        return json.loads(reply["json"])

    async def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def bench_javascript(
    args: argparse.Namespace, url: str, port: int, egress: Any, run: Run, rows: list[Row]
) -> None:
    try:
        from voicefn.sandbox.javascript import JavaScriptSandbox, SandboxUnavailable
    except ImportError as exc:
        run.fail(f"javascript sandbox could not be imported: {exc}"[:400])
        return
    gap_s = (args.gap_ms if args.gap_ms is not None else DEFAULT_GAP_MS["javascript"]) / 1000
    trivial = (JS_TRIVIAL, "greet", {"name": "Ada"}, False)
    one_get = (JS_HTTP.replace("URL", json.dumps(url)), "checkOrder", {"order_id": "ORD-1"}, True)
    sandbox = JavaScriptSandbox(mode=args.mode)
    workdir = Path(tempfile.mkdtemp(prefix="voicefn-bench-"))
    floors: list[DenoFloor] = []
    deno, vendor = deno_binary(), js_vendor_dir()
    script = workdir / "floor.js"
    denodir = workdir / "deno_dir"
    has_floor = deno is not None and vendor is not None

    def new_floor() -> DenoFloor:
        assert deno is not None
        assert vendor is not None
        floor = DenoFloor(deno, script, vendor, port, denodir)
        floors.append(floor)
        return floor

    def data_for(tenant: str, extra: dict[str, Any]) -> dict[str, Any]:
        # What CodeRunner passes: call, variables, then the function's arguments.
        return {"call": call_info(tenant), "variables": {"plan": "gold"}, **extra}

    def sandbox_call(
        fn: tuple[str, str, dict[str, Any], bool], tenant: str, row: Row | None
    ) -> Call:
        code, entry, extra, http = fn
        data = data_for(tenant, extra)

        async def call() -> str | None:
            outcome = await sandbox.run(code, entry, data, egress=egress, tenant=tenant)
            if not outcome.ok:
                return f"{outcome.error}: {outcome.detail[:200]}"
            if row is not None:
                row.report(outcome)
            return _check_value(outcome.value, http)

        return call

    def floor_call(floor: DenoFloor, fn: tuple[str, str, dict[str, Any], bool]) -> Call:
        code, entry, extra, http = fn
        data = data_for("floor", extra)

        async def call() -> str | None:
            try:
                value = await floor.run(code, entry, data)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return _check_value(value, http)

        return call

    async def cold_floor() -> str | None:
        """A fresh plain Deno process, from spawn to the first job's answer."""
        floor = new_floor()
        try:
            await floor.start()
            return await floor_call(floor, trivial)()
        finally:
            await floor.close()

    try:
        try:
            await sandbox.start()
        except (SandboxUnavailable, RuntimeError) as exc:
            run.fail(f"javascript sandbox unavailable: {exc}"[:400])
            return
        if has_floor:
            script.write_text(JS_FLOOR)
            denodir.mkdir()
            await cold_floor()  # unmeasured: the page cache holds Deno and the libraries
        else:
            run.notes.append(
                "javascript: no floor (the Deno binary or the vendored libraries were not found)"
            )

        # Cold: the new tenant's Deno process starts in bubblewrap on its first call's path.
        row = Row(
            "javascript",
            "cold: new tenant (process start)",
            floor_note="fresh plain deno process" if has_floor else "",
        )
        rows.append(row)
        for i in range(args.cold):
            if run.out_of_time():
                break
            steps: list[tuple[Call, list[int], str]] = [
                (sandbox_call(trivial, f"cold-{i}", row), row.sandbox_ns, "sandbox")
            ]
            if has_floor:
                steps.append((cold_floor, row.floor_ns, "floor"))
            if i % 2:
                steps.reverse()
            for call, samples, side in steps:
                await timed(call, samples, run, f"javascript cold {side}")
                await asyncio.sleep(gap_s)  # the new process warms its spare Worker

        warm_floor: DenoFloor | None = None
        if has_floor:
            warm_floor = new_floor()
            await warm_floor.start()
        for label, fn, target in (
            ("warm: trivial", trivial, TRIVIAL_TARGET_MS),
            ("warm: one HTTP GET (loopback)", one_get, HTTP_TARGET_MS),
        ):
            note = "plain warm deno process" if warm_floor is not None else ""
            row = Row("javascript", label, target_ms=target, floor_note=note)
            rows.append(row)
            fl = floor_call(warm_floor, fn) if warm_floor is not None else None
            warm_up = sandbox_call(fn, "warm", None)
            for _ in range(5):
                await warm_up()
                await asyncio.sleep(gap_s)
                if fl is not None:
                    await fl()
            await interleaved(row, sandbox_call(fn, "warm", row), fl, args.calls, gap_s, run)
    finally:
        for floor in floors:
            await floor.close()
        await sandbox.aclose()
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------------------ report


def _pair(s: dict[str, Any] | None) -> str:
    return "-" if s is None else f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}"


def print_table(rows: list[dict[str, Any]], header: str, run: Run) -> None:
    print(header)
    columns = ("scenario", "n", "sandbox p50 / p99 ms", "floor p50 / p99 ms", "added p50", "target")
    table = []
    for r in rows:
        sandbox = r["sandbox"]
        added = "-" if r["added_p50_ms"] is None else f"+{r['added_p50_ms']:.2f} ms"
        if r["target_p50_ms"] is None:
            target = "-"
        elif r["target_met"] is None:
            target = f"p50 < {r['target_p50_ms']:g} ms: no data"
        else:
            verdict = "met" if r["target_met"] else "NOT met"
            target = f"p50 < {r['target_p50_ms']:g} ms: {verdict}"
        table.append(
            (
                f"{r['language']} {r['scenario']}",
                str(sandbox["n"]) if sandbox else "0",
                _pair(sandbox),
                _pair(r["floor"]),
                added,
                target,
            )
        )
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip())
    for r in rows:
        if r["floor_note"]:
            continue
        if r["floor"] is None:
            print(f"note: {r['language']} {r['scenario']}: no floor measured")
    for r in rows:
        reported = r["sandbox_reported_p50_ms"]
        keys = [k for k in ("wait_ms", "run_ms", "egress_ms", "cold_start_ms") if k in reported]
        if keys:
            parts = ", ".join(f"{k} {reported[k]:.2f}" for k in keys)
            print(f"sandbox-reported p50: {r['language']} {r['scenario']}: {parts}")
    for note in run.notes:
        print(f"note: {note}")
    if run.truncated:
        print("note: --max-seconds reached: some scenarios have fewer samples")
    for what, count in run.failures.items():
        print(f"FAILED x{count}: {what}")


async def amain(args: argparse.Namespace) -> int:
    load = os.getloadavg()
    run = Run(deadline=time.monotonic() + args.max_seconds)
    rows: list[Row] = []
    server = LoopbackServer()
    await server.start(args.max_seconds + HARD_STOP_GRACE_S + 30)
    url = f"http://127.0.0.1:{server.port}/orders"
    # The engine's egress path: an Executor's CodeRunner.egress on its policy-checked client.
    executor = voicefn.Executor(allow=["127.0.0.1"], sandbox_mode=args.mode)
    try:
        async with asyncio.timeout(args.max_seconds + HARD_STOP_GRACE_S):
            if args.lang in ("python", "both"):
                await bench_python(args, url, executor.code.egress, run, rows)
            if args.lang in ("javascript", "both"):
                await bench_javascript(args, url, server.port, executor.code.egress, run, rows)
    except TimeoutError:
        run.fail("the run was cancelled (--max-seconds + 60 s)")
    finally:
        await executor.aclose()
        await server.close()
    figures = [row.to_json() for row in rows]
    if args.gap_ms is None:
        gap = ", ".join(f"{ms:g} ms ({lang})" for lang, ms in DEFAULT_GAP_MS.items())
    else:
        gap = f"{args.gap_ms:g} ms"
    header = (
        f"sandbox latency: mode={args.mode}, {args.calls} warm calls per scenario, "
        f"{args.cold} cold samples, gap {gap}; {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average before {load[0]:.2f}"
    )
    if args.json:
        json.dump(
            {
                "mode": args.mode,
                "calls": args.calls,
                "cold_samples": args.cold,
                "gap_ms": args.gap_ms,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_before": [round(x, 2) for x in load],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                "rows": figures,
                "notes": run.notes,
                "truncated": run.truncated,
                "failures": run.failures,
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print_table(figures, header, run)
    return 1 if run.failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=100, help="warm calls per scenario and side")
    parser.add_argument("--cold", type=int, default=5, help="cold-start samples per scenario")
    parser.add_argument("--lang", choices=("python", "javascript", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--mode", choices=("isolated", "unsafe-process"), default="isolated")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=None,
        help="pause after each sandbox call (default: 20 for Python, 250 for JavaScript)",
    )
    parser.add_argument("--max-seconds", type=float, default=110.0)
    args = parser.parse_args()
    if args.calls < 1 or args.cold < 1 or args.max_seconds <= 0:
        parser.error("--calls and --cold must be at least 1, --max-seconds positive")
    sys.exit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
