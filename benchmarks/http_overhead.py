"""How much the Executor adds on top of a bare pooled ``httpx.AsyncClient``.

    python benchmarks/http_overhead.py [--requests N] [--rounds R] [--json]

A minimal keep-alive HTTP/1.1 server runs in a separate process (``_loopback_server.py``) on
127.0.0.1, so it does not share this process's event loop. In this process two clients send the
same request to it:

* executor: ``Executor.run(function, '{"order_id": "ORD-1"}', context)``: bind and validate the
  arguments, render the request template, send through the egress-policy transport, read the whole
  body, parse the JSON, build the ToolResult;
* baseline: a bare ``httpx.AsyncClient`` (same pool limits, default transport) doing the same POST
  with the same JSON body and Authorization header, reading the whole body and parsing the JSON.

They are measured interleaved after a warm-up: at concurrency 1 in small alternating batches, at
concurrency 100 in alternating rounds (ABBA order), so drift affects both equally. Every figure is
the median over rounds of the per-round figure. Concurrency 1 runs first, while each pool holds one
connection: httpcore's pool does work proportional to the number of pooled connections (and, when
requests queue, to connections x waiting requests) on every request, so the concurrency-100 phase is
dominated by it for both clients alike. Targets (from the issue): executor p50 latency
within 10% of bare httpx, throughput at least 90% of it. They are printed as information; the exit
status is 0 whether or not they are met (it is 1 only if requests fail).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

import voicefn
from _common import (
    Budget,
    LoopbackServer,
    check_order_function,
    emit,
    environment,
    environment_line,
    percentile,
    pooled_client,
)

ARGUMENTS = '{"order_id": "ORD-1"}'
TOKEN = "Bearer bench-token-0123456789"
LATENCY_TARGET = 1.10  # executor p50 / baseline p50 at most this
THROUGHPUT_TARGET = 0.90  # executor req/s / baseline req/s at least this

Call = Callable[[], Awaitable[bool]]
FailureLog = Counter[str]  # reason -> count, across the whole run


# ----------------------------------------------------------------------------- clients


def make_function(port: int) -> voicefn.Function:
    # Generous timeout, so a stall on a busy host cannot fail executor requests only (the
    # baseline has no timeout); asyncio.timeout costs the same whatever its length.
    spec = check_order_function(
        f"http://127.0.0.1:{port}/orders", api_token=TOKEN, headers={}, timeout_ms=60_000
    )
    return voicefn.load_function(spec)


def executor_call(ex: voicefn.Executor, function: voicefn.Function, failures: FailureLog) -> Call:
    context = voicefn.CallContext(call_sid="CA1")

    async def call() -> bool:
        result = await ex.run(function, ARGUMENTS, context, tool_call_id="t1")
        if not result.ok:
            reason = f"{result.error}: {result.content[:200]}"
            failures[reason] += 1
        return result.ok

    return call


def baseline_call(client: httpx.AsyncClient, port: int, failures: FailureLog) -> Call:
    url = f"http://127.0.0.1:{port}/orders"
    headers = {"Authorization": TOKEN, "Content-Type": "application/json"}

    async def call() -> bool:
        arguments = json.loads(ARGUMENTS)
        body = json.dumps({"order_id": arguments["order_id"]}, ensure_ascii=False).encode()
        try:
            response = await client.post(url, content=body, headers=headers)
            data = json.loads(response.content.decode("utf-8"))
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:200]
            failures[reason] += 1
            return False
        if response.status_code != 200:
            reason = f"status {response.status_code}"
            failures[reason] += 1
        return response.status_code == 200 and data is not None

    return call


# --------------------------------------------------------------------------- measuring


@dataclass
class Side:
    """Per-round figures of one client (executor or baseline)."""

    p50_c1: list[float] = field(default_factory=list)  # ns
    p99_c1: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    p50_cn: list[float] = field(default_factory=list)
    p99_cn: list[float] = field(default_factory=list)
    cpu_cn: list[float] = field(default_factory=list)  # this process's CPU ns per request
    failures: int = 0


async def sequential(call: Call, count: int, samples: list[int]) -> int:
    """``count`` requests one after another; appends each one's time; returns failures."""
    failures = 0
    clock = time.perf_counter_ns
    for _ in range(count):
        t0 = clock()
        ok = await call()
        samples.append(clock() - t0)
        failures += not ok
    return failures


async def concurrent(call: Call, total: int, concurrency: int) -> tuple[float, list[int], int]:
    """``total`` requests from ``concurrency`` workers: (requests/s, per-request ns, failures)."""
    samples: list[int] = []
    remaining = total
    failures = 0
    clock = time.perf_counter_ns

    async def worker() -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            t0 = clock()
            ok = await call()
            samples.append(clock() - t0)
            failures += not ok

    started = clock()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, total)):
            tg.create_task(worker())
    elapsed = clock() - started
    return total / (elapsed / 1e9), samples, failures


async def phase_c1(
    calls: dict[str, Call], sides: dict[str, Side], requests: int, batch: int
) -> None:
    """One round at concurrency 1: alternating batches, each side starting first half the time."""
    samples: dict[str, list[int]] = {name: [] for name in calls}
    order = list(calls)
    done = 0
    while done < requests:
        n = min(batch, requests - done)
        for name in order:
            sides[name].failures += await sequential(calls[name], n, samples[name])
        order.reverse()
        done += n
    for name, values in samples.items():
        values.sort()
        sides[name].p50_c1.append(percentile(values, 50))
        sides[name].p99_c1.append(percentile(values, 99))


async def phase_cn(
    calls: dict[str, Call], sides: dict[str, Side], requests: int, concurrency: int, flip: bool
) -> None:
    """One round at high concurrency: each side once, in an order that flips every round."""
    order = list(calls)
    if flip:
        order.reverse()
    for name in order:
        gc.collect()
        cpu = time.process_time_ns()
        rps, values, failures = await concurrent(calls[name], requests, concurrency)
        sides[name].cpu_cn.append((time.process_time_ns() - cpu) / requests)
        values.sort()
        side = sides[name]
        side.rps.append(rps)
        side.p50_cn.append(percentile(values, 50))
        side.p99_cn.append(percentile(values, 99))
        side.failures += failures


async def measure(args: argparse.Namespace, port: int, budget: Budget) -> dict[str, Any]:
    function = make_function(port)
    sides = {"executor": Side(), "baseline": Side()}
    async with (
        voicefn.Executor(allow_private_network=True, max_connections=args.max_connections) as ex,
        pooled_client(args.max_connections) as client,
    ):
        reasons: dict[str, FailureLog] = {"executor": Counter(), "baseline": Counter()}
        calls = {
            "executor": executor_call(ex, function, reasons["executor"]),
            "baseline": baseline_call(client, port, reasons["baseline"]),
        }
        # Correctness first: both clients must get the answer before anything is timed.
        result = await ex.run(function, ARGUMENTS, voicefn.CallContext(call_sid="CA1"))
        if not result.ok:
            raise RuntimeError(f"the executor's request failed: {result.content}")
        if not await calls["baseline"]():
            raise RuntimeError("the baseline request failed")

        async def phase(
            warm_up: Callable[[Call], Awaitable[object]],
            one_round: Callable[[int], Awaitable[None]],
        ) -> int:
            """Warm each client up, then ``--rounds`` rounds (at least one within the budget)."""
            for call in calls.values():
                await warm_up(call)
            for log in reasons.values():
                log.clear()  # warm-up requests are not counted
            gc.collect()
            done = 0
            for i in range(args.rounds):
                if done >= 1 and budget.spent():
                    break
                await one_round(i)
                done += 1
            return done

        # Concurrency 1 first, while each pool holds a single connection: httpcore's pool does
        # work proportional to its size on every request, which would blur the comparison.
        rounds_done = {
            "c1": await phase(
                lambda call: sequential(call, args.warmup, []),
                lambda _: phase_c1(calls, sides, args.requests, args.batch),
            )
        }
        # Then open every connection the concurrent phase uses.
        c, warmup_cn = args.concurrency, max(args.warmup, args.concurrency * 3)
        rounds_done["cn"] = await phase(
            lambda call: concurrent(call, warmup_cn, c),
            lambda i: phase_cn(calls, sides, args.requests, c, flip=i % 2 == 1),
        )
        gc.collect()
    return report(args, sides, rounds_done, reasons)


# ---------------------------------------------------------------------------- reporting


def _spread(values: list[float]) -> list[float]:
    return [round(min(values), 4), round(max(values), 4)]


def report(
    args: argparse.Namespace,
    sides: dict[str, Side],
    rounds_done: dict[str, int],
    reasons: dict[str, FailureLog],
) -> dict[str, Any]:
    ex, base = sides["executor"], sides["baseline"]
    c = args.concurrency
    rows = [
        # key, label, unit, scale from stored value, per-round executor, per-round baseline
        ("latency_p50_c1", "latency p50 @ c=1", "us", 1e-3, ex.p50_c1, base.p50_c1),
        ("latency_p99_c1", "latency p99 @ c=1", "us", 1e-3, ex.p99_c1, base.p99_c1),
        ("throughput_c" + str(c), f"throughput @ c={c}", "req/s", 1.0, ex.rps, base.rps),
        (f"latency_p50_c{c}", f"latency p50 @ c={c}", "us", 1e-3, ex.p50_cn, base.p50_cn),
        (f"latency_p99_c{c}", f"latency p99 @ c={c}", "us", 1e-3, ex.p99_cn, base.p99_cn),
        (f"cpu_per_request_c{c}", f"client CPU/req @ c={c}", "us", 1e-3, ex.cpu_cn, base.cpu_cn),
    ]
    metrics: dict[str, Any] = {}
    for key, label, unit, scale, e_rounds, b_rounds in rows:
        e = statistics.median(e_rounds) * scale
        b = statistics.median(b_rounds) * scale
        per_round = [x / y for x, y in zip(e_rounds, b_rounds, strict=True)]
        metrics[key] = {
            "label": label,
            "unit": unit,
            "executor": round(e, 1),
            "baseline": round(b, 1),
            "ratio": round(e / b, 4),
            "ratio_per_round_min_max": _spread(per_round),
        }
    overhead = [(x - y) / 1e3 for x, y in zip(ex.p50_c1, base.p50_c1, strict=True)]
    latency_ratio = metrics["latency_p50_c1"]["ratio"]
    throughput_ratio = metrics[f"throughput_c{c}"]["ratio"]
    return {
        "config": {
            "requests_per_round": args.requests,
            "rounds_c1": rounds_done["c1"],
            "rounds_concurrent": rounds_done["cn"],
            "batch_c1": args.batch,
            "concurrency": c,
            "max_connections": args.max_connections,
            "warmup": args.warmup,
        },
        "environment": environment(
            implementation=platform.python_implementation(),
            httpx=httpx.__version__,
            voicefn=voicefn.__version__,
        ),
        "metrics": metrics,
        "added_overhead_p50_c1_us": round(
            (statistics.median(ex.p50_c1) - statistics.median(base.p50_c1)) / 1e3, 1
        ),
        "added_overhead_p50_c1_us_per_round_min_max": _spread(overhead),
        "targets": {
            "latency_p50_c1": {
                "description": "executor p50 latency within 10% of bare httpx (concurrency 1)",
                "ratio": latency_ratio,
                "target": f"<= {LATENCY_TARGET:.2f}",
                "met": latency_ratio <= LATENCY_TARGET,
            },
            f"throughput_c{c}": {
                "description": f"executor throughput at least 90% of bare httpx (concurrency {c})",
                "ratio": throughput_ratio,
                "target": f">= {THROUGHPUT_TARGET:.2f}",
                "met": throughput_ratio >= THROUGHPUT_TARGET,
            },
        },
        "failures": {"executor": ex.failures, "baseline": base.failures, "reasons": reasons},
    }


def print_table(data: dict[str, Any]) -> None:
    cfg, env = data["config"], data["environment"]
    print(environment_line(env, "voicefn", "httpx"))
    print(
        f"{cfg['requests_per_round']} requests per client per round; "
        f"{cfg['rounds_c1']} rounds at c=1 (batches of {cfg['batch_c1']}), "
        f"{cfg['rounds_concurrent']} rounds at c={cfg['concurrency']}; medians over rounds"
    )
    print()
    header = f"{'metric':<24} {'unit':<6} {'executor':>10} {'baseline':>10} {'ratio':>7}  rounds"
    print(header)
    print("-" * len(header))
    for m in data["metrics"].values():
        lo, hi = m["ratio_per_round_min_max"]
        print(
            f"{m['label']:<24} {m['unit']:<6} {m['executor']:>10.1f} {m['baseline']:>10.1f} "
            f"{m['ratio']:>7.3f}  {lo:.3f}..{hi:.3f}"
        )
    lo, hi = data["added_overhead_p50_c1_us_per_round_min_max"]
    print()
    print(
        f"added overhead at p50, c=1: {data['added_overhead_p50_c1_us']:+.1f} us per request "
        f"(rounds: {lo:+.1f}..{hi:+.1f})"
    )
    print(
        "ratio = executor / baseline (latency, CPU: lower is better; throughput: higher is "
        "better)\nclient CPU/req: this process only (the server is another process)"
    )
    print()
    print("targets (information only):")
    for t in data["targets"].values():
        verdict = "met" if t["met"] else "NOT met"
        print(f"  {t['description']}: ratio {t['ratio']:.3f}, target {t['target']} -> {verdict}")
    failures = data["failures"]
    if failures["executor"] or failures["baseline"]:
        print(
            f"\nFAILED REQUESTS (figures unreliable): executor {failures['executor']}, "
            f"baseline {failures['baseline']}"
        )
        for side, log in failures["reasons"].items():
            for reason, count in sorted(log.items(), key=lambda item: -item[1])[:5]:
                print(f"  {side}: {count} x {reason}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Executor overhead over a bare pooled httpx.AsyncClient, on loopback."
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=1000,
        help="requests per client per round, in each phase (default 1000)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per phase (default 5)")
    parser.add_argument(
        "--batch", type=int, default=50, help="alternating batch size at c=1 (default 50)"
    )
    parser.add_argument("--concurrency", type=int, default=100, help="default 100")
    parser.add_argument(
        "--max-connections", type=int, default=200, help="pool size of both clients (default 200)"
    )
    parser.add_argument(
        "--warmup", type=int, default=300, help="warm-up requests per client (default 300)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=90.0,
        help="no new round starts after this long; hard stop at twice it (default 90)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    for name in ("requests", "rounds", "batch", "concurrency", "max_connections"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.max_seconds <= 0:
        parser.error("--warmup must be >= 0 and --max-seconds > 0")
    return args


async def amain(args: argparse.Namespace, port: int) -> dict[str, Any]:
    budget = Budget(args.max_seconds)
    async with asyncio.timeout(args.max_seconds * 2):
        return await measure(args, port, budget)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with LoopbackServer(max_seconds=args.max_seconds * 2 + 30) as server:
        try:
            data = asyncio.run(amain(args, server.port))
        except TimeoutError:
            print(f"benchmark stopped: over {args.max_seconds * 2:.0f} s", file=sys.stderr)
            return 1
    emit(data, args.json, print_table)
    return 1 if data["failures"]["executor"] or data["failures"]["baseline"] else 0


if __name__ == "__main__":
    sys.exit(main())
