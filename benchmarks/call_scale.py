"""How many concurrent calls one process holds: N CallSessions at once, next to the bare floor.

    python benchmarks/call_scale.py [--calls 100,500,1000] [--seconds 30] [--quick] [--uvloop]

Each run is a fresh process holding N calls at once, against a fast fake LLM and function API in
another process (``_call_servers.py``, on uvloop when installed). Every call loops: a caller's
turn (the LLM streams one tool call, the HTTP function runs, the LLM streams the answer), then
``--think`` seconds of silence (3 s, +-10 %), with its history growing by four messages a turn.
The calls start spread over the first think time; measuring starts once all have started and
lasts ``--seconds``. The same load runs through:

* voicefn: one ``CallSession`` per call, one shared ``voicefn.Executor``;
* floor: aiohttp and orjson directly (``_calls.floor_turn``), one pooled session, one message list
  per call;

and with ``--uvloop`` each of them again on uvloop (``pip install uvloop``).

Printed per run: turns per second, failed turns (an error, a wrong result, or no end within
``--turn-timeout``), (a) args complete -> function request and (b) function response -> next LLM
request (p50/p99, from the servers' clocks, as in ``turn_overhead.py``), the event loop's lag
(a 10 ms ticker: how late it woke; p50/p99/max), CPU per turn (the process's CPU time over the
window / the turns finished in it) and the CPU the process used (% of one core), and memory per
call (resident memory at the end of the window, all calls alive with their histories, minus the
process's after its warm-up, / N), the full garbage collections in the window and the longest,
and the load average before the run. The voicefn runs also measure an idle ``CallSession`` with
tracemalloc. Targets at N = 1,000 (on 2 cores): no failed turn, (a) p99 < 10 ms, (b) p99 < 20 ms,
under 200 KB per call; printed as information, the exit status is 0 either way.

The machine's other work moves these figures: compare sides within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _calls import (
    SYSTEM,
    agent_spec,
    fetch_times,
    floor_client,
    floor_turn,
    idle_session_bytes,
    intervals,
    voicefn_turn,
)
from _common import HelperProcess, emit, environment, environment_line, percentile

CALL_SERVERS = Path(__file__).with_name("_call_servers.py")
TARGETS = {"a_p99_ms": 10.0, "b_p99_ms": 20.0, "kb_per_call": 200.0}
LAG_TICK_S = 0.01


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ================================================================================ one run (child)


class Load:
    """N calls looping turn / think until ``stop``; what happened, turn by turn."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stop = asyncio.Event()
        self.turns: list[tuple[float, str, str | None]] = []  # (ended, key, problem)
        self.lags: list[tuple[float, float]] = []  # (when, ms late)
        self.history: list[int] = []
        self.gc_pauses: list[tuple[float, int, float]] = []

    def watch_gc(self) -> None:
        """Record the collector's pauses: (when it ended, generation, ms)."""
        started = [0.0]

        def callback(phase: str, info: dict[str, int]) -> None:
            now = time.perf_counter()
            if phase == "start":
                started[0] = now
            else:
                self.gc_pauses.append((now, info["generation"], (now - started[0]) * 1000))

        gc.callbacks.append(callback)

    async def ticker(self) -> None:
        loop = asyncio.get_running_loop()
        expected = loop.time() + LAG_TICK_S
        while not self.stop.is_set():
            await asyncio.sleep(LAG_TICK_S)
            now = loop.time()
            self.lags.append((time.perf_counter(), max(0.0, (now - expected) * 1000)))
            expected = now + LAG_TICK_S

    async def call(self, index: int, run_turn: Any, messages_of: Any) -> None:
        args = self.args
        await asyncio.sleep(args.think * index / args.calls)
        number = 0
        while not self.stop.is_set():
            key = f"{args.prefix}c{index:04d}t{number:04d}"
            try:
                async with asyncio.timeout(args.turn_timeout):
                    problem = await run_turn(key)
            except TimeoutError:
                problem = f"no end within {args.turn_timeout:g} s"
            except Exception as exc:  # counted and reported
                problem = f"{type(exc).__name__}: {exc}"
            self.turns.append((time.perf_counter(), key, problem))
            number += 1
            think = args.think * random.uniform(0.9, 1.1)
            try:
                async with asyncio.timeout(think):
                    await self.stop.wait()
            except TimeoutError:
                pass
        self.history.append(len(messages_of()))


async def child(args: argparse.Namespace) -> dict[str, Any]:
    import voicefn
    from voicefn.runtime import CallSession, load_agent

    llm_url = f"http://127.0.0.1:{args.llm_port}/v1"
    fn_url = f"http://127.0.0.1:{args.fn_port}/orders"
    agent = load_agent(agent_spec(args.llm_port, args.fn_port))
    result: dict[str, Any] = {
        "side": args.side,
        "loop": args.loop,
        "calls": args.calls,
        "load_before": round(os.getloadavg()[0], 2),
    }
    async with voicefn.Executor(allow_private_network=True) as ex, floor_client() as http:
        load = Load(args)

        def voicefn_call() -> tuple[Any, Any]:
            session = CallSession(agent, executor=ex)
            return (lambda key: voicefn_turn(session, key)), (lambda: session.messages)

        def floor_call() -> tuple[Any, Any]:
            messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
            llm = f"{llm_url}/chat/completions"
            return (lambda key: floor_turn(http, llm, fn_url, messages, key)), (lambda: messages)

        make = voicefn_call if args.side == "voicefn" else floor_call
        # Warm-up: connections, caches, lazy imports; then the baseline.
        warm_turn, _ = make()
        for number in range(3):
            await warm_turn(f"w{args.prefix}{number}")
        if args.side == "voicefn":
            idle = idle_session_bytes(agent, ex, count=100)
            result["idle_session_kb"] = round(idle["bytes"] / 1024, 2)
        gc.collect()
        gc.freeze()  # what was loaded so far stays out of the collector's way
        baseline = rss_bytes()

        load.watch_gc()
        ticker = asyncio.create_task(load.ticker())
        tasks = [asyncio.create_task(load.call(i, *make())) for i in range(args.calls)]
        await asyncio.sleep(args.think)  # every call has started
        window_start = time.perf_counter()
        cpu_start = time.process_time()
        await asyncio.sleep(args.seconds)
        cpu = time.process_time() - cpu_start
        window_end = time.perf_counter()
        rss_end = rss_bytes()
        tracked = len(gc.get_objects())  # what a full collection visits (frozen ones aside)
        load.stop.set()
        _, pending = await asyncio.wait(tasks, timeout=args.turn_timeout + 5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, ticker, return_exceptions=True)
        times = await fetch_times(http, args.fn_port, args.prefix)

    in_window = [t for t in load.turns if window_start <= t[0] <= window_end]
    ok = [key for _, key, problem in in_window if problem is None]
    failed = [problem for _, _, problem in load.turns if problem is not None]
    a: list[float] = []
    b: list[float] = []
    for key in ok:
        pair = intervals(times.get(key, {}))
        if pair is not None:
            a.append(pair[0] / 1000)
            b.append(pair[1] / 1000)
    lags = sorted(lag for when, lag in load.lags if window_start <= when <= window_end)
    seconds = window_end - window_start
    full = [
        ms for when, gen, ms in load.gc_pauses if gen == 2 and window_start <= when <= window_end
    ]
    result.update(
        {
            "seconds": round(seconds, 1),
            "turns": len(in_window),
            "turns_per_s": round(len(in_window) / seconds, 1),
            "failed": len(failed),
            "failed_examples": sorted(set(failed))[:3],
            "a_ms": _spread(a),
            "b_ms": _spread(b),
            "lag_ms": _spread(lags) | {"max": round(lags[-1], 1) if lags else None},
            "gc_tracked_objects": tracked,
            "gc_full_collections": len(full),
            "gc_full_max_ms": round(max(full), 1) if full else 0.0,
            "cpu_per_turn_us": round(cpu / max(len(in_window), 1) * 1e6),
            "cpu_percent": round(cpu / seconds * 100),
            "kb_per_call": round((rss_end - baseline) / args.calls / 1024, 1),
            "messages_per_call_at_end": round(statistics.mean(load.history), 1)
            if load.history
            else None,
        }
    )
    return result


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"p50": None, "p99": None}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(percentile(ordered, 99), 2),
    }


def run_child(args: argparse.Namespace) -> None:
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(child(args))
    else:
        result = asyncio.run(child(args))
    print(json.dumps(result), flush=True)


# ================================================================================ orchestration


def start_servers(args: argparse.Namespace) -> HelperProcess:
    argv = [
        sys.executable,
        str(CALL_SERVERS),
        f"--hold-ms={args.hold_ms}",
        f"--gap-ms={args.gap_ms}",
        f"--fn-delay-ms={args.fn_delay_ms}",
        "--max-seconds=3600",
        "--uvloop",
    ]
    return HelperProcess(argv, "PORTS", "the benchmark servers")


def one_run(
    args: argparse.Namespace, ports: list[int], side: str, loop: str, calls: int, prefix: str
) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        f"--side={side}",
        f"--loop={loop}",
        f"--calls={calls}",
        f"--seconds={args.seconds}",
        f"--think={args.think}",
        f"--turn-timeout={args.turn_timeout}",
        f"--llm-port={ports[0]}",
        f"--fn-port={ports[1]}",
        f"--prefix={prefix}",
    ]
    budget = args.think + args.seconds + args.turn_timeout + 90
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=budget, check=False)
    except subprocess.TimeoutExpired:
        return {"side": side, "loop": loop, "calls": calls, "error": f"no result in {budget} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"side": side, "loop": loop, "calls": calls, "error": " / ".join(tail)}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp
    import orjson

    import voicefn

    loops = ["asyncio"]
    uvloop_version = None
    if args.uvloop:
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed (pip install uvloop): asyncio only", file=sys.stderr)
        else:
            loops.append("uvloop")
            uvloop_version = getattr(uvloop, "__version__", "?")
    calls = [int(n) for n in args.calls.split(",")]
    runs: list[dict[str, Any]] = []
    with start_servers(args) as servers:
        number = 0
        for i, n in enumerate(calls):
            sides = ["floor", "voicefn"] if i % 2 == 0 else ["voicefn", "floor"]
            for loop in loops:
                for side in sides:
                    number += 1
                    print(f"  {side} on {loop}, {n} calls ...", file=sys.stderr, flush=True)
                    runs.append(one_run(args, servers.numbers, side, loop, n, f"r{number}x"))
    versions: dict[str, Any] = {
        "voicefn": getattr(voicefn, "__version__", "?"),
        "aiohttp": aiohttp.__version__,
        "orjson": orjson.__version__,
    }
    if uvloop_version:
        versions["uvloop"] = uvloop_version
    return {
        "config": {
            "seconds": args.seconds,
            "think_s": args.think,
            "turn_timeout_s": args.turn_timeout,
            "hold_after_args_ms": args.hold_ms,
            "argument_chunk_gap_ms": args.gap_ms,
            "function_delay_ms": args.fn_delay_ms,
        },
        "environment": environment(**versions),
        "runs": runs,
        "targets": targets(runs, max(calls)),
    }


def targets(runs: list[dict[str, Any]], calls: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for run in runs:
        if run["side"] != "voicefn" or run["calls"] != calls or "error" in run:
            continue
        a, b = run["a_ms"]["p99"], run["b_ms"]["p99"]
        out[run["loop"]] = {
            "calls": calls,
            "no_failed_turn": run["failed"] == 0,
            "a_p99_under_10_ms": a is not None and a < TARGETS["a_p99_ms"],
            "b_p99_under_20_ms": b is not None and b < TARGETS["b_p99_ms"],
            "under_200_kb_per_call": run["kb_per_call"] < TARGETS["kb_per_call"],
        }
    return out


def _p(spread: dict[str, Any], key: str) -> str:
    value = spread.get(key)
    return f"{value:6.1f}" if value is not None else f"{'-':>6}"


def print_report(data: dict[str, Any]) -> None:
    cfg, env = data["config"], data["environment"]
    packages = [p for p in ("voicefn", "aiohttp", "orjson", "uvloop") if p in env]
    print(environment_line(env, *packages))
    print(
        f"{cfg['seconds']} s measured per run after a {cfg['think_s']} s ramp; think time "
        f"{cfg['think_s']} s; a turn fails after {cfg['turn_timeout_s']} s; the LLM holds "
        f"{cfg['hold_after_args_ms']} ms after the arguments, the function answers after "
        f"{cfg['function_delay_ms']} ms"
    )
    print(
        f"{'calls':>6} {'side':>8} {'loop':>8} {'turns/s':>8} {'failed':>6} "
        f"{'(a) p50':>7} {'p99':>6} {'(b) p50':>7} {'p99':>6} "
        f"{'lag p50':>7} {'p99':>6} {'max':>6} {'CPU/turn':>8} {'CPU':>5} {'KB/call':>8} "
        f"{'full GC':>9} {'load':>5}"
    )
    print(
        f"{'':>6} {'':>8} {'':>8} {'':>8} {'':>6} {'ms':>7} {'':>6} {'ms':>7} {'':>6} {'ms':>7}"
        f"{'':>47}{'(longest)':>10}"
    )
    for run in data["runs"]:
        head = f"{run['calls']:>6} {run['side']:>8} {run['loop']:>8}"
        if "error" in run:
            print(f"{head} failed to run: {run['error']}")
            continue
        print(
            f"{head} {run['turns_per_s']:8.1f} {run['failed']:6d} "
            f"{_p(run['a_ms'], 'p50'):>7} {_p(run['a_ms'], 'p99')} "
            f"{_p(run['b_ms'], 'p50'):>7} {_p(run['b_ms'], 'p99')} "
            f"{_p(run['lag_ms'], 'p50'):>7} {_p(run['lag_ms'], 'p99')} "
            f"{_p(run['lag_ms'], 'max')} "
            f"{run['cpu_per_turn_us'] / 1000:6.2f}ms {run['cpu_percent']:4d}% "
            f"{run['kb_per_call']:8.1f} "
            f"{run['gc_full_collections']:>2}x{run['gc_full_max_ms']:4.0f}ms "
            f"{run['load_before']:5.1f}"
        )
    idle = [r["idle_session_kb"] for r in data["runs"] if "idle_session_kb" in r]
    if idle:
        print(
            f"idle CallSession (tracemalloc): {statistics.median(idle):.1f} KB "
            "-> target < 100 KB " + ("met" if max(idle) < 100 else "NOT met")
        )
    for loop, verdicts in data["targets"].items():
        shown = ", ".join(
            f"{k.replace('_', ' ')}: {'met' if v else 'NOT met'}"
            for k, v in verdicts.items()
            if k != "calls"
        )
        print(f"targets at {verdicts['calls']} calls ({loop}): {shown}")
    for run in data["runs"]:
        if run.get("failed"):
            print(f"{run['side']} {run['loop']} {run['calls']}: e.g. {run['failed_examples'][0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", default="100,500,1000", help="concurrent calls per run")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per run")
    parser.add_argument("--think", type=float, default=3.0, help="seconds between turns")
    parser.add_argument("--turn-timeout", type=float, default=10.0, help="a turn fails after")
    parser.add_argument("--quick", action="store_true", help="10 s per run")
    parser.add_argument("--uvloop", action="store_true", help="every run again on uvloop")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--hold-ms", type=float, default=25.0, help="hold after the last args")
    parser.add_argument("--gap-ms", type=float, default=2.0, help="gap between args chunks")
    parser.add_argument("--fn-delay-ms", type=float, default=40.0, help="function server delay")
    child_args = parser.add_argument_group("one run (internal)")
    child_args.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    child_args.add_argument("--side", default="voicefn", help=argparse.SUPPRESS)
    child_args.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    child_args.add_argument("--llm-port", type=int, default=0, help=argparse.SUPPRESS)
    child_args.add_argument("--fn-port", type=int, default=0, help=argparse.SUPPRESS)
    child_args.add_argument("--prefix", default="r", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.calls = int(args.calls)
        run_child(args)
        return
    if args.quick:
        args.seconds = 10.0
    emit(orchestrate(args), args.json, print_report)


if __name__ == "__main__":
    main()
