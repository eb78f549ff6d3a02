"""An HTTP function through the Executor against the fastest honest floor, on loopback.

    python benchmarks/http_overhead.py [--requests N] [--rounds R] [--json]

A minimal keep-alive HTTP/1.1 server runs in a separate process (``_loopback_server.py``) on
127.0.0.1, so it does not share this process's event loop. In this process four clients send the
same POST (JSON body, Authorization header), read the whole body and parse the JSON:

* executor: ``Executor.run(function, '{"order_id": "ORD-1"}', context)``: bind and validate the
  arguments, render the request template, the egress policy (checked address, every hop),
  redirects followed by the engine, the bounded decoder, the ToolResult;
* aiohttp: a bare pooled ``aiohttp.ClientSession`` (the practical floor for Python HTTP: the
  baseline every ratio is taken against);
* httpx: a bare pooled ``httpx.AsyncClient`` (the engine's client stack before this benchmark
  chose aiohttp);
* bolna: the per-call work of Bolna 0.11.9's tool execution (``trigger_api``), rebuilt from its
  source: URL vetting with a ``getaddrinfo`` per call, the body %-formatted from its template, a
  new ``aiohttp.ClientSession`` per call (so a new connection each time), ``json=`` body, text
  read and parsed (its log lines skipped, its SSRF guard accepting loopback).

They are measured interleaved after a warm-up: at concurrency 1 in small alternating batches, at
concurrency 100 in alternating rounds whose order rotates, so drift affects all alike. Every
figure is the median over rounds of the per-round figure. Targets (issue 10): executor p50 at
concurrency 1 <= 1.3x bare aiohttp; throughput at concurrency 100 >= 0.5x bare aiohttp and >= 3x
bolna; p99 at concurrency 100 below bolna's. They are printed as information; the exit status is 0
whether or not they are met (it is 1 only if requests fail).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import platform
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx

import voicefn
from _common import (
    Budget,
    Call,
    LoopbackServer,
    check_order_function,
    concurrent,
    emit,
    environment,
    environment_line,
    percentile,
    pooled_client,
    sequential,
)

ARGUMENTS = '{"order_id": "ORD-1"}'
TOKEN = "Bearer bench-token-0123456789"
NAMES = ("executor", "aiohttp", "httpx", "bolna")

FailureLog = Counter[str]  # reason -> count, across the whole run


# ----------------------------------------------------------------------------- clients


def make_function(port: int) -> voicefn.Function:
    # Generous timeout, so a stall on a busy host cannot fail executor requests only (the
    # baseline has no timeout); the deadline costs the same whatever its length.
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


def httpx_call(client: httpx.AsyncClient, port: int, failures: FailureLog) -> Call:
    url = f"http://127.0.0.1:{port}/orders"
    headers = {"Authorization": TOKEN, "Content-Type": "application/json"}

    async def call() -> bool:
        arguments = json.loads(ARGUMENTS)
        body = json.dumps({"order_id": arguments["order_id"]}, ensure_ascii=False).encode()
        try:
            response = await client.post(url, content=body, headers=headers)
            data = json.loads(response.content.decode("utf-8"))
        except (httpx.HTTPError, ValueError) as exc:
            failures[f"{type(exc).__name__}: {exc}"[:200]] += 1
            return False
        if response.status_code != 200:
            failures[f"status {response.status_code}"] += 1
        return response.status_code == 200 and data is not None

    return call


def aiohttp_call(session: aiohttp.ClientSession, port: int, failures: FailureLog) -> Call:
    url = f"http://127.0.0.1:{port}/orders"
    headers = {"Authorization": TOKEN, "Content-Type": "application/json"}

    async def call() -> bool:
        arguments = json.loads(ARGUMENTS)
        body = json.dumps({"order_id": arguments["order_id"]}, ensure_ascii=False).encode()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                data = json.loads((await response.read()).decode("utf-8"))
                status = response.status
        except (aiohttp.ClientError, ValueError) as exc:
            failures[f"{type(exc).__name__}: {exc}"[:200]] += 1
            return False
        if status != 200:
            failures[f"status {status}"] += 1
        return status == 200 and data is not None

    return call


BOLNA_PARAM = '{"order_id": "%(order_id)s"}'  # Bolna's legacy %-template for the body


def bolna_call(port: int, failures: FailureLog) -> Call:
    """The per-call work of Bolna 0.11.9's ``trigger_api``, rebuilt from its source (read, not
    copied): vet the URL (split it, resolve the host with ``getaddrinfo`` in the loop's
    executor, check each address), build the body by %-formatting the param template and
    parsing it back, open a new ``aiohttp.ClientSession`` (so a new connection), POST ``json=``
    with allow_redirects=False, read the text. Its SSRF guard would refuse 127.0.0.1; here the
    loopback address is accepted, as an allow-listed host would be. Its log lines are skipped."""
    url = f"http://127.0.0.1:{port}/orders"
    headers = {"Authorization": TOKEN, "Content-Type": "application/json"}

    async def call() -> bool:
        kwargs = json.loads(ARGUMENTS)
        try:
            parts = urlsplit(url)
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, parts.port, type=socket.SOCK_STREAM
            )
            if not all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos):
                raise RuntimeError("unexpected address")
            payload = json.loads(BOLNA_PARAM % kwargs)
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.post(url, json=payload, headers=headers, allow_redirects=False) as r,
            ):
                data = json.loads(await r.text())
                status = r.status
        except (aiohttp.ClientError, OSError, ValueError, RuntimeError) as exc:
            failures[f"{type(exc).__name__}: {exc}"[:200]] += 1
            return False
        if status != 200:
            failures[f"status {status}"] += 1
        return status == 200 and data is not None

    return call


# --------------------------------------------------------------------------- measuring


@dataclass
class Side:
    """Per-round figures of one client."""

    p50_c1: list[float] = field(default_factory=list)  # ns
    p99_c1: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    p50_cn: list[float] = field(default_factory=list)
    p99_cn: list[float] = field(default_factory=list)
    cpu_cn: list[float] = field(default_factory=list)  # this process's CPU ns per request
    failures: int = 0


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
    calls: dict[str, Call], sides: dict[str, Side], requests: int, concurrency: int, rotate: int
) -> None:
    """One round at high concurrency: each side once, in an order that rotates every round."""
    order = list(calls)
    shift = rotate % len(order)
    order = order[shift:] + order[:shift]
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
    sides = {name: Side() for name in NAMES}
    connector = aiohttp.TCPConnector(limit=args.max_connections, limit_per_host=0)
    async with (
        voicefn.Executor(allow_private_network=True, max_connections=args.max_connections) as ex,
        pooled_client(args.max_connections) as client,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        reasons: dict[str, FailureLog] = {name: Counter() for name in NAMES}
        calls = {
            "executor": executor_call(ex, function, reasons["executor"]),
            "aiohttp": aiohttp_call(session, port, reasons["aiohttp"]),
            "httpx": httpx_call(client, port, reasons["httpx"]),
            "bolna": bolna_call(port, reasons["bolna"]),
        }
        # Correctness first: every client must get the answer before anything is timed.
        result = await ex.run(function, ARGUMENTS, voicefn.CallContext(call_sid="CA1"))
        if not result.ok:
            raise RuntimeError(f"the executor's request failed: {result.content}")
        for name, call in calls.items():
            if not await call():
                raise RuntimeError(f"the {name} request failed: {dict(reasons[name])}")

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
            lambda i: phase_cn(calls, sides, args.requests, c, rotate=i),
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
    c = args.concurrency
    rows = [
        # key, label, unit, scale from stored value, attribute of Side
        ("latency_p50_c1", "latency p50 @ c=1", "us", 1e-3, "p50_c1"),
        ("latency_p99_c1", "latency p99 @ c=1", "us", 1e-3, "p99_c1"),
        (f"throughput_c{c}", f"throughput @ c={c}", "req/s", 1.0, "rps"),
        (f"latency_p50_c{c}", f"latency p50 @ c={c}", "us", 1e-3, "p50_cn"),
        (f"latency_p99_c{c}", f"latency p99 @ c={c}", "us", 1e-3, "p99_cn"),
        (f"cpu_per_request_c{c}", f"client CPU/req @ c={c}", "us", 1e-3, "cpu_cn"),
    ]
    metrics: dict[str, Any] = {}
    for key, label, unit, scale, attr in rows:
        per_side = {name: getattr(side, attr) for name, side in sides.items()}
        values = {name: round(statistics.median(v) * scale, 1) for name, v in per_side.items()}
        floor = per_side["aiohttp"]
        metrics[key] = {
            "label": label,
            "unit": unit,
            **values,
            "ratio_vs_aiohttp": {
                name: round(statistics.median(v) / statistics.median(floor), 3)
                for name, v in per_side.items()
            },
            "executor_vs_aiohttp_per_round_min_max": _spread(
                [x / y for x, y in zip(per_side["executor"], floor, strict=True)]
            ),
            "executor_vs_bolna": round(values["executor"] / values["bolna"], 3),
        }
    ex, floor = sides["executor"], sides["aiohttp"]
    overhead = [(x - y) / 1e3 for x, y in zip(ex.p50_c1, floor.p50_c1, strict=True)]
    lat = metrics["latency_p50_c1"]["ratio_vs_aiohttp"]["executor"]
    thr = metrics[f"throughput_c{c}"]
    p99 = metrics[f"latency_p99_c{c}"]
    targets = {
        "latency_p50_c1": ("executor p50 @ c=1 vs bare aiohttp", lat, "<= 1.30", lat <= 1.30),
        "throughput_vs_aiohttp": (
            f"executor throughput @ c={c} vs bare aiohttp",
            thr["ratio_vs_aiohttp"]["executor"],
            ">= 0.50",
            thr["ratio_vs_aiohttp"]["executor"] >= 0.5,
        ),
        "throughput_vs_bolna": (
            f"executor throughput @ c={c} vs bolna",
            thr["executor_vs_bolna"],
            ">= 3.00",
            thr["executor_vs_bolna"] >= 3.0,
        ),
        "p99_vs_bolna": (
            f"executor p99 @ c={c} vs bolna",
            p99["executor_vs_bolna"],
            "< 1.00",
            p99["executor_vs_bolna"] < 1.0,
        ),
    }
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
            aiohttp=aiohttp.__version__,
            voicefn=voicefn.__version__,
        ),
        "metrics": metrics,
        "added_overhead_p50_c1_us": round(
            (statistics.median(ex.p50_c1) - statistics.median(floor.p50_c1)) / 1e3, 1
        ),
        "added_overhead_p50_c1_us_per_round_min_max": _spread(overhead),
        "targets": {
            key: {"description": d, "ratio": r, "target": t, "met": m}
            for key, (d, r, t, m) in targets.items()
        },
        "failures": {
            **{name: side.failures for name, side in sides.items()},
            "reasons": reasons,
        },
    }


def print_table(data: dict[str, Any]) -> None:
    cfg, env = data["config"], data["environment"]
    print(environment_line(env, "voicefn", "aiohttp", "httpx"))
    print(
        f"{cfg['requests_per_round']} requests per client per round; "
        f"{cfg['rounds_c1']} rounds at c=1 (batches of {cfg['batch_c1']}), "
        f"{cfg['rounds_concurrent']} rounds at c={cfg['concurrency']}; medians over rounds"
    )
    print()
    header = (
        f"{'metric':<24} {'unit':<6} "
        + " ".join(f"{n:>9}" for n in NAMES)
        + f" {'ex/aio':>7} {'ex/bolna':>8}  ex/aio rounds"
    )
    print(header)
    print("-" * len(header))
    for m in data["metrics"].values():
        lo, hi = m["executor_vs_aiohttp_per_round_min_max"]
        print(
            f"{m['label']:<24} {m['unit']:<6} "
            + " ".join(f"{m[n]:>9.1f}" for n in NAMES)
            + f" {m['ratio_vs_aiohttp']['executor']:>7.3f} {m['executor_vs_bolna']:>8.3f}"
            + f"  {lo:.3f}..{hi:.3f}"
        )
    lo, hi = data["added_overhead_p50_c1_us_per_round_min_max"]
    print()
    print(
        f"executor over bare aiohttp at p50, c=1: {data['added_overhead_p50_c1_us']:+.1f} us "
        f"per request (rounds: {lo:+.1f}..{hi:+.1f})"
    )
    print(
        "ratios: latency and CPU lower is better, throughput higher is better; "
        "client CPU/req is this process only (the server is another process)"
    )
    print()
    print("targets (information only):")
    for t in data["targets"].values():
        verdict = "met" if t["met"] else "NOT met"
        print(f"  {t['description']}: {t['ratio']:.3f}, target {t['target']} -> {verdict}")
    failures = data["failures"]
    if any(failures[n] for n in NAMES):
        print(
            "\nFAILED REQUESTS (figures unreliable): "
            + ", ".join(f"{n} {failures[n]}" for n in NAMES)
        )
        for side, log in failures["reasons"].items():
            for reason, count in sorted(log.items(), key=lambda item: -item[1])[:5]:
                print(f"  {side}: {count} x {reason}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="An HTTP function through the Executor vs bare aiohttp, httpx and Bolna-style."
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
    return 1 if any(data["failures"][n] for n in NAMES) else 0


if __name__ == "__main__":
    sys.exit(main())
