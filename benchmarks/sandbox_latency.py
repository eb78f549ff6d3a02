"""Latency of the Python and JavaScript sandboxes against the same function run without one.

    python benchmarks/sandbox_latency.py [--calls N] [--cold N] [--json] [--lang python|javascript|both]
        [--patterns paced,back-to-back,concurrent] [--concurrency 20] [--rounds 10]

Scenarios, per language:

* cold: a new tenant's first call (``--cold`` samples, each on a new tenant). Python has two:
  with a warm spare worker ready (the engine's default pool, ``warm_workers=2``) and with no spare
  (``warm_workers=0``: bubblewrap + python + imports + warm-up + first fork on the call's path).
  JavaScript: the tenant adopts the spare process started ahead (``spare_processes=1``).
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
* JavaScript, the **isolate floor** (back-to-back sustained and concurrent rows, trivial function):
  a plain ``deno run`` process that runs each job in a FRESH bare Worker (``permissions: "none"``,
  no libraries, no prelude: the job's code path only), created when the job arrives and
  terminated after it, jobs at once each in its own Worker; under the tenant process's one-core
  cpu quota where a cgroup v1 cpu controller is writable (root). What "a fresh isolate per job"
  costs by itself: the sandbox cannot be faster than this without reusing isolates. (No
  GET rows: a bare Worker has neither axios nor network.)

The HTTP functions: Python ``await ctx.http.get(URL, params=...)``, JavaScript
``await axios.get(URL, {params})`` (in the sandbox a fresh axios per job: with ``--js-runner realm``,
the default, evaluated in the job's fresh V8 context inside a Worker that stays; with
``--js-runner worker`` in a fresh Worker per job). The notes say which runner took the calls.

Sandbox and floor calls alternate (ABBA). Each sandbox call is followed by ``--gap-ms`` of quiet
(default 20 ms Python, 250 ms JavaScript; one voice agent calls a function every few seconds at
most): the JavaScript host makes the next Worker after each job (~50 ms of CPU: axios evaluated,
moment and lodash only when a job touches them; a job arriving earlier takes another of the
pool or waits for it), the Python zygote pre-forks the next child.
p50 is the median, p99 the nearest-rank 99th percentile (with few samples, close to the max);
all times are ``time.perf_counter_ns`` around the awaited call. The text output also shows the
sandbox's own p50 breakdown (``Outcome.timings``: wait/run, and the egress request's ms).

Patterns of warm calls (``--patterns``): ``paced`` (the gap above after each call), ``back-to-back``
(``--calls`` calls with no pause at all, sandbox and floor in blocks of their own; JavaScript also
in bursts of ``spare_workers`` calls with ``--burst-pause-ms`` between bursts) and ``concurrent``
(``--rounds`` rounds of ``--concurrency`` trivial calls of one tenant started at once, each timed
from the round's start).

Targets (issue 10): paced p50 < 10 ms trivial, < 20 ms one GET; back to back p50 < 5 ms / < 10 ms
(Python) and < 10 ms / < 15 ms (JavaScript); 20 concurrent calls p99 < 50 ms; a new tenant's first
call p50 < 150 ms. They are printed as information; the exit status is 0 whether or not they are
met (1 if a call failed or a sandbox could not start). No new sample starts after
``--max-seconds``; the run is cancelled 60 s after that.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import voicefn
from _common import LoopbackServer, emit
from _sandbox_floors import DenoFloor, DenoFloors, IsolateFloor, PythonFloor, call_context
from _sandbox_measure import (
    Call,
    CpuClock,
    Function,
    Row,
    Run,
    back_to_back,
    concurrent_rounds,
    floor_call,
    print_table,
    process_tree_cpu,
    sandbox_call,
    timed,
    warm_rows,
)
from voicefn.sandbox.common import Outcome

TRIVIAL_TARGET_MS = 10.0  # paced (a pause after each call)
HTTP_TARGET_MS = 20.0
# Issue 10: calls back to back (no pause), p50
B2B_TARGET_MS = {"python": (5.0, 10.0), "javascript": (10.0, 15.0)}  # (trivial, one GET)
CONCURRENT_P99_TARGET_MS = 50.0  # 20 concurrent calls of one tenant, p99
COLD_TARGET_MS = 150.0  # a new tenant's first call, p50
PATTERNS = ("paced", "back-to-back", "concurrent")
SETTLE_S = 2.0  # after a new tenant's first calls: the spare it took is being replaced
HARD_STOP_GRACE_S = 60.0
# Pause after each measured sandbox call: the Python zygote pre-forks the next child during a
# call; the JavaScript host makes the next Worker after it (~50 ms of CPU here).
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


def functions(language: str, url: str) -> tuple[Function, Function]:
    """The trivial function and the one making a GET to ``url``, in ``language``."""
    if language == "python":
        http_code, http_entry = PY_HTTP.replace("URL", repr(url)), "check_order"
    else:
        http_code, http_entry = JS_HTTP.replace("URL", json.dumps(url)), "checkOrder"
    trivial_code = PY_TRIVIAL if language == "python" else JS_TRIVIAL
    return (
        Function(trivial_code, "greet", {"name": "Ada"}, False),
        Function(http_code, http_entry, {"order_id": "ORD-1"}, True),
    )


def warm_scenarios(trivial: Function, one_get: Function) -> list[tuple[str, Function, float]]:
    return [
        ("warm: trivial", trivial, TRIVIAL_TARGET_MS),
        ("warm: one HTTP GET (loopback)", one_get, HTTP_TARGET_MS),
    ]


def gap_seconds(args: argparse.Namespace, language: str) -> float:
    return (args.gap_ms if args.gap_ms is not None else DEFAULT_GAP_MS[language]) / 1000


async def pattern_rows(
    args: argparse.Namespace,
    language: str,
    trivial: Function,
    one_get: Function,
    sandbox: Callable[[Function, str, Row | None], Call],
    floor: Callable[[Function], Call] | None,
    floor_note: str,
    run: Run,
    rows: list[Row],
    bursts: int = 0,
    cpu: CpuClock | None = None,
    isolate: Call | None = None,
    isolate_note: str = "",
) -> None:
    """The back-to-back rows (sustained, and in bursts of ``bursts`` when given) and the
    concurrent row, each on a tenant of its own whose worker/process is warm first; with
    ``cpu``, each row's CPU per sandbox call too; with ``isolate`` (the trivial function in the
    isolate floor), that floor beside the sustained and concurrent trivial rows."""
    if "back-to-back" in args.patterns:
        targets = B2B_TARGET_MS[language]
        shapes = [(0, 0.0, "sustained")]
        if bursts:
            shapes.append((bursts, args.burst_pause_ms / 1000, f"bursts of {bursts}"))
        for burst, pause_s, shape in shapes:
            for fn, target, what in (
                (trivial, targets[0], "trivial"),
                (one_get, targets[1], "one GET"),
            ):
                row = Row(
                    language,
                    f"back to back ({shape}): {what}",
                    target_ms=target,
                    floor_note=floor_note,
                )
                rows.append(row)
                tenant = f"b2b-{burst}"
                for _ in range(5):
                    await sandbox(fn, tenant, None)()
                # a new tenant's first call can start a spare (a worker, a process) for the
                # next new tenant: let it finish before measuring
                await asyncio.sleep(SETTLE_S)
                fl = floor(fn) if floor is not None else None
                iso = isolate if burst == 0 and fn is trivial else None
                if iso is not None:
                    row.isolate_note = isolate_note
                    for _ in range(5):
                        await iso()  # unmeasured, like the other sides' warm-up
                await back_to_back(
                    row, sandbox(fn, tenant, row), fl, args.calls, burst, pause_s, run, cpu, iso
                )
                await asyncio.sleep(0.5)
    if "concurrent" in args.patterns:
        n = args.concurrency
        row = Row(
            language,
            f"{n} concurrent (one tenant): trivial",
            target_ms=CONCURRENT_P99_TARGET_MS,
            target_stat="p99",
            floor_note=floor_note,
        )
        rows.append(row)
        warm = sandbox(trivial, "concurrent", None)
        for _ in range(3):
            await warm()
        await asyncio.gather(*(warm() for _ in range(n)))  # unmeasured: the tenant's pool sized
        await asyncio.sleep(SETTLE_S)
        fl = floor(trivial) if floor is not None else None
        if isolate is not None:
            row.isolate_note = isolate_note
            await asyncio.gather(*(isolate() for _ in range(n)))  # unmeasured
        await concurrent_rounds(
            row, sandbox(trivial, "concurrent", row), fl, n, args.rounds, 1.0, run, cpu, isolate
        )


# ------------------------------------------------------------------------------ Python


async def bench_python(
    args: argparse.Namespace, url: str, egress: Any, run: Run, rows: list[Row]
) -> None:
    try:
        from voicefn.sandbox.python import PythonSandbox, SandboxUnavailable
    except ImportError as exc:
        run.fail(f"python sandbox could not be imported: {exc}"[:400])
        return
    gap_s = gap_seconds(args, "python")
    trivial, one_get = functions("python", url)
    floor = PythonFloor()
    # The engine's pool as CodeRunner builds it (PythonSandbox(mode=...)): two warm spares.
    sandbox = PythonSandbox(mode=args.mode)
    cold_sandbox = PythonSandbox(mode=args.mode, warm_workers=0)

    def in_sandbox(sb: PythonSandbox, fn: Function, tenant: str, row: Row | None) -> Call:
        run_fn = functools.partial(
            sb.run,
            fn.code,
            fn.entrypoint,
            fn.arguments,
            call_context(tenant),
            egress=functools.partial(egress, tenant),
            tenant=tenant,
        )
        return sandbox_call(run_fn, fn.http, row)

    def sandbox_cpu() -> float:
        """This process's CPU and that of the sandbox's workers (bubblewrap, zygote, children;
        the pool's worker list is private: a benchmark may look)."""
        pool = sandbox._pool
        roots = [w.proc.pid for w in (pool._all if pool else ()) if w.proc is not None]
        return time.process_time() + process_tree_cpu(roots)

    def in_process(fn: Function) -> Call:
        context = call_context("floor")
        run_fn = functools.partial(floor.run, fn.code, fn.entrypoint, fn.arguments, context)
        return floor_call(run_fn, fn.http)

    async def cold_row(
        scenario: str, which: str, sb: PythonSandbox, tenant: str, settle_s: float
    ) -> Row:
        """New tenants' first calls, each after ``settle_s``; the in-process call as floor."""
        row = Row("python", f"cold: new tenant, {scenario}", floor_note="in-process call")
        if which == "spare":
            row.target_ms = COLD_TARGET_MS
        rows.append(row)
        for i in range(args.cold):
            if settle_s:
                await asyncio.sleep(settle_s)
            if run.spent():
                break
            call = in_sandbox(sb, trivial, f"{tenant}-{i}", row)
            await timed(call, row.sandbox_ns, run, f"python cold ({which}) sandbox")
            await timed(floor_trivial, row.floor_ns, run, "python cold floor")
        return row

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
        floor_trivial = in_process(trivial)
        for _ in range(5):  # the floor's code paths (and its connection) warm, like the sandbox's
            await floor_trivial()
            await in_process(one_get)()

        # Cold, no spare: the tenant's worker starts on its first call's path.
        row = await cold_row("no warm spare", "no spare", cold_sandbox, "cold-nospare", 0.0)
        await cold_sandbox.aclose()
        cold_s = statistics.median(row.sandbox_ns) / 1e9 if row.sandbox_ns else 0.3

        # Cold, spare ready: the tenant takes a warm spare (and the pool starts the next spare
        # right then, on the same CPUs); each sample waits for the previous one's replacement.
        settle_s = min(max(3 * cold_s, 0.4), 3.0)
        await cold_row("warm spare ready", "spare", sandbox, "cold-spare", settle_s)
        await asyncio.sleep(settle_s)

        # Warm: one tenant keeps its worker; a few unmeasured calls first.
        if "paced" in args.patterns:
            await warm_rows(
                "python",
                warm_scenarios(trivial, one_get),
                lambda fn, row: in_sandbox(sandbox, fn, "warm", row),
                in_process,
                "in-process call",
                args.calls,
                gap_s,
                run,
                rows,
            )
        await pattern_rows(
            args,
            "python",
            trivial,
            one_get,
            lambda fn, tenant, row: in_sandbox(sandbox, fn, tenant, row),
            in_process,
            "in-process call",
            run,
            rows,
            cpu=sandbox_cpu,
        )
    finally:
        await cold_sandbox.aclose()
        await sandbox.aclose()
        await floor.aclose()


# ------------------------------------------------------------------------------ JavaScript


async def bench_javascript(
    args: argparse.Namespace, url: str, port: int, egress: Any, run: Run, rows: list[Row]
) -> None:
    try:
        from voicefn.sandbox.javascript import JavaScriptSandbox, SandboxUnavailable
    except ImportError as exc:
        run.fail(f"javascript sandbox could not be imported: {exc}"[:400])
        return
    gap_s = gap_seconds(args, "javascript")
    trivial, one_get = functions("javascript", url)
    realms = args.js_runner == "realm"
    sandbox = JavaScriptSandbox(mode=args.mode, realms=realms)
    floors = DenoFloors(port)
    runners: collections.Counter[str] = collections.Counter()

    async def counted(invoke: Callable[[], Awaitable[Outcome]]) -> Outcome:
        outcome = await invoke()
        runners[str(outcome.runner)] += 1
        return outcome

    def in_sandbox(fn: Function, tenant: str, row: Row | None) -> Call:
        # What CodeRunner passes: call, variables, then the function's arguments.
        data = {**call_context(tenant), **fn.arguments}
        run_fn = functools.partial(
            sandbox.run,
            fn.code,
            fn.entrypoint,
            data,
            egress=functools.partial(egress, tenant),
            tenant=tenant,
        )
        return sandbox_call(functools.partial(counted, run_fn), fn.http, row)

    def in_floor(floor: DenoFloor | IsolateFloor, fn: Function) -> Call:
        data = {**call_context("floor"), **fn.arguments}
        return floor_call(functools.partial(floor.run, fn.code, fn.entrypoint, data), fn.http)

    def sandbox_cpu() -> float:
        """This process's CPU and that of the tenants' Deno processes (bubblewrap, Deno, all
        its Workers' threads; the process table is private: a benchmark may look). A block's
        calls are charged what the process did meanwhile: jobs, and the Workers made for them."""
        roots = [p.proc.pid for p in sandbox._processes.values() if p.proc is not None]
        return time.process_time() + process_tree_cpu(roots)

    async def cold_floor() -> str | None:
        """A fresh plain Deno process, from spawn to the first job's answer."""
        floor = await floors.start_new()
        try:
            return await in_floor(floor, trivial)()
        finally:
            await floor.close()

    try:
        try:
            await sandbox.start()
        except (SandboxUnavailable, RuntimeError) as exc:
            run.fail(f"javascript sandbox unavailable: {exc}"[:400])
            return
        if floors.available:
            floors.prepare()
            await cold_floor()  # unmeasured: the page cache holds Deno and the libraries
        else:
            run.notes.append(
                "javascript: no floor (the Deno binary or the vendored libraries were not found)"
            )

        # Cold: the new tenant's Deno process starts in bubblewrap on its first call's path.
        # Cold: a new tenant adopts the spare process (started ahead, nothing run in it yet);
        # a new spare then starts in the background: each sample waits for it.
        await asyncio.sleep(args.cold_pause_ms / 1000)
        row = Row(
            "javascript",
            "cold: new tenant (spare process ready)",
            target_ms=COLD_TARGET_MS,
            floor_note="fresh plain deno process" if floors.available else "",
        )
        rows.append(row)
        for i in range(args.cold):
            if run.spent():
                break
            steps: list[tuple[Call, list[int], str]] = [
                (in_sandbox(trivial, f"cold-{i}", row), row.sandbox_ns, "sandbox")
            ]
            if floors.available:
                steps.append((cold_floor, row.floor_ns, "floor"))
            if i % 2:
                steps.reverse()
            for call, samples, side in steps:
                await timed(call, samples, run, f"javascript cold {side}")
                await asyncio.sleep(args.cold_pause_ms / 1000)  # the next spare process starts

        warm_floor = await floors.start_new() if floors.available else None
        floor_of = None if warm_floor is None else functools.partial(in_floor, warm_floor)
        floor_note = "plain warm deno process" if warm_floor is not None else ""
        isolate: Call | None = None
        isolate_note = ""
        if floors.available and ({"back-to-back", "concurrent"} & args.patterns):
            isolate_floor = await floors.start_isolate(sandbox.cpu_limit)
            isolate = in_floor(isolate_floor, trivial)
            isolate_note = (
                "a plain deno process, a fresh bare Worker (permissions none, no libraries, "
                f"no prelude) made per job and terminated after it; {isolate_floor.quota_note}"
            )
        if "paced" in args.patterns:
            await warm_rows(
                "javascript",
                warm_scenarios(trivial, one_get),
                lambda fn, row: in_sandbox(fn, "warm", row),
                floor_of,
                floor_note,
                args.calls,
                gap_s,
                run,
                rows,
            )
        await pattern_rows(
            args,
            "javascript",
            trivial,
            one_get,
            in_sandbox,
            floor_of,
            floor_note,
            run,
            rows,
            bursts=sandbox.spare_workers,
            cpu=sandbox_cpu,
            isolate=isolate,
            isolate_note=isolate_note,
        )
    finally:
        # which runner took the calls: the fast path (a realm per job) or a fresh Worker per job
        run.notes.append(
            f"javascript runner (--js-runner {args.js_runner}): "
            + (", ".join(f"{k} {n}" for k, n in sorted(runners.items())) or "no calls")
        )
        await floors.aclose()
        await sandbox.aclose()


# ------------------------------------------------------------------------------ main


async def amain(args: argparse.Namespace) -> int:
    load = os.getloadavg()
    run = Run(args.max_seconds)
    rows: list[Row] = []
    server = LoopbackServer(args.max_seconds + HARD_STOP_GRACE_S + 30)
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
        server.close()
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
    data = {
        "mode": args.mode,
        "calls": args.calls,
        "patterns": sorted(args.patterns),
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "cold_samples": args.cold,
        "gap_ms": args.gap_ms,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": [round(x, 2) for x in load],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "rows": figures,
        "notes": run.notes,
        "truncated": run.exhausted,
        "failures": run.failures,
    }
    emit(data, args.json, lambda _: print_table(figures, header, run))
    return 1 if run.failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=100, help="warm calls per scenario and side")
    parser.add_argument("--cold", type=int, default=5, help="cold-start samples per scenario")
    parser.add_argument("--lang", choices=("python", "javascript", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--mode", choices=("isolated", "unsafe-process"), default="isolated")
    parser.add_argument(
        "--js-runner",
        choices=("realm", "worker"),
        default="realm",
        help="JavaScript: realm (the default fast path: a fresh V8 context per job in a Worker "
        "that stays) or worker (JavaScriptSandbox(realms=False): a fresh Worker per job)",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=None,
        help="pause after each sandbox call (default: 20 for Python, 250 for JavaScript)",
    )
    parser.add_argument(
        "--patterns",
        default=",".join(PATTERNS),
        help="which warm patterns to run, comma-separated: paced (a pause after each call), "
        "back-to-back (no pause), concurrent (--concurrency calls at once)",
    )
    parser.add_argument("--concurrency", type=int, default=20, help="calls at once (concurrent)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of concurrent calls")
    parser.add_argument(
        "--burst-pause-ms",
        type=float,
        default=600.0,
        help="JavaScript back-to-back bursts: the pause between bursts (the pool refills)",
    )
    parser.add_argument(
        "--cold-pause-ms",
        type=float,
        default=1500.0,
        help="JavaScript: the pause around each cold sample (the next spare process starts)",
    )
    parser.add_argument("--max-seconds", type=float, default=420.0)
    args = parser.parse_args()
    args.patterns = {p.strip() for p in args.patterns.split(",") if p.strip()}
    if not args.patterns <= set(PATTERNS):
        parser.error(f"--patterns: choose from {', '.join(PATTERNS)}")
    if args.calls < 1 or args.cold < 1 or args.max_seconds <= 0:
        parser.error("--calls and --cold must be at least 1, --max-seconds positive")
    if args.concurrency < 1 or args.rounds < 1:
        parser.error("--concurrency and --rounds must be at least 1")
    sys.exit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
