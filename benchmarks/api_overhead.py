"""What the platform adds: the execute endpoint against calling the Executor directly.

    python benchmarks/api_overhead.py [--requests N] [--rounds R] [--concurrency C]
                                      [--processes P] [--json]

A minimal keep-alive HTTP/1.1 server runs in its own process (``_loopback_server.py``) on
127.0.0.1: the customer's API. ``voicefn serve`` runs in another process (SQLite in a temporary
data directory, every execution recorded, its JSON access log written to /dev/null), with one
agent and the benchmarks' ``check_order`` POST function; ``--processes 2`` starts a second one on
the same data directory (``voicefn serve`` has no ``--workers``: several processes are how it
scales) and the client sends requests to each in turn. In this process three clients run the
same function with the same arguments:

* service: ``POST /v1/agents/{id}/functions/check_order/execute`` over a pooled aiohttp session
  (API key check, agent and function lookup, the shared Executor, recording, the JSON answer);
* hop: the same request to a bare aiohttp server in another process (``_hop_server.py``, on
  uvloop) that runs the same Executor call and answers the ToolResult as JSON: no API key, no
  lookups, no recording, no log line. The floor of "an HTTP hop" on this machine: any service in
  front of the engine pays it (a second process's CPU, the client's HTTP work, the loopback);
* direct: ``Executor.run(function, '{"order_id": "ORD-1"}', context)`` in this process, the floor
  the service cannot beat (the same engine without HTTP in front of it).

They are measured interleaved after a warm-up: at concurrency 1 in batches whose order rotates
every batch, at concurrency ``C`` (default 50) in rounds whose order rotates; every figure is the
median over rounds. ``ratio`` is service / direct; ``hop ratio`` is hop / direct, and
``vs hop`` is service / hop (what the platform costs beyond any HTTP service). ``server CPU/req``
is the CPU time (from /proc) of the processes that answer each side per request at concurrency
``C``: the service's, the hop server's, and this process's for direct (the Executor alone); it
moves less with other load on the machine than the throughput does. Targets (issue 9): the service adds under 1 ms at p50 and
keeps at least 80% of direct throughput. They are printed as information; the exit status is 0
whether or not they are met (1 only if requests fail).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

import voicefn
from _common import (
    Budget,
    Call,
    HelperProcess,
    LoopbackServer,
    check_order_function,
    concurrent,
    emit,
    environment,
    environment_line,
    percentile,
    sequential,
)

ARGUMENTS = '{"order_id": "ORD-1"}'
TOKEN = "Bearer bench-token-0123456789"
NAMES = ("service", "hop", "direct")
HOP_SERVER = Path(__file__).with_name("_hop_server.py")


# ---------------------------------------------------------------------------- the service


class Service:
    """``python -m voicefn.server serve`` on a free port, with a fresh data directory."""

    def __init__(self, data_dir: Path, timeout: float = 60.0) -> None:
        argv = [
            sys.executable, "-m", "voicefn.server", "serve", "--port", "0",
            "--data-dir", str(data_dir), "--allow-private-network",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                lines.put(raw.decode().rstrip("\n"))
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        self.url = self.key = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith("voicefn serve: "):
                self.url = line.split()[2]
            elif line.startswith("API key: "):
                self.key = line.split()[2]
            elif line.startswith("Dashboard:"):
                return
        self.close()
        raise RuntimeError("voicefn serve did not start")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def setup(session: aiohttp.ClientSession, service: Service, port: int) -> str:
    """An agent with the check_order function; returns the execute URL."""
    headers = {"Authorization": f"Bearer {service.key}"}
    agent = {"name": "bench", "system_prompt": "Benchmark agent."}
    async with session.put(f"{service.url}/v1/agents/bench", json=agent, headers=headers) as r:
        assert r.status in (200, 201), await r.text()
    function = function_document(port)
    async with session.post(
        f"{service.url}/v1/agents/bench/functions", json=function, headers=headers
    ) as r:
        assert r.status == 201, await r.text()
    return "/v1/agents/bench/functions/check_order/execute"


def function_document(port: int) -> dict[str, Any]:
    return check_order_function(
        f"http://127.0.0.1:{port}/orders", api_token=TOKEN, headers={}, timeout_ms=60_000
    )


class HopServer(HelperProcess):
    """``_hop_server.py`` running the benchmark's function; ``url`` once it listens."""

    def __init__(self, port: int, max_seconds: float) -> None:
        document = json.dumps(function_document(port))
        argv = [sys.executable, str(HOP_SERVER), document, "--max-seconds", str(max_seconds)]
        super().__init__(argv, "PORT", "the hop server", timeout=60.0)
        self.url = f"http://127.0.0.1:{self.numbers[0]}/execute"


def service_call(
    session: aiohttp.ClientSession, urls: list[str], key: str | None, failures: list[str]
) -> Call:
    """A POST of the execute body to ``urls`` in turn (with the API key, when given)."""
    turn = itertools.cycle(urls)
    body = json.dumps({"arguments": ARGUMENTS, "context": {"call_sid": "CA1"}}).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"

    async def call() -> bool:
        try:
            async with session.post(next(turn), data=body, headers=headers) as response:
                data = json.loads(await response.read())
                ok = response.status == 200 and data.get("ok") is True
        except (aiohttp.ClientError, ValueError) as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:200])
            return False
        if not ok:
            failures.append(str(data)[:200])
        return ok

    return call


def direct_call(ex: voicefn.Executor, function: voicefn.Function, failures: list[str]) -> Call:
    context = voicefn.CallContext(call_sid="CA1", agent_id="bench", workspace_id="bench")

    async def call() -> bool:
        result = await ex.run(function, ARGUMENTS, context, tool_call_id="t1")
        if not result.ok:
            failures.append(result.content[:200])
        return result.ok

    return call


# ---------------------------------------------------------------------------- measuring


@dataclass
class Side:
    p50_c1: list[float] = field(default_factory=list)  # ns
    p99_c1: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    p50_cn: list[float] = field(default_factory=list)
    p99_cn: list[float] = field(default_factory=list)
    cpu_cn: list[float] = field(default_factory=list)  # us of the serving process per request
    failures: int = 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far (Linux /proc; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


async def round_c1(calls: dict[str, Call], sides: dict[str, Side], n: int, batch: int) -> None:
    samples: dict[str, list[int]] = {name: [] for name in calls}
    order = list(calls)
    done = 0
    while done < n:
        k = min(batch, n - done)
        for name in order:
            sides[name].failures += await sequential(calls[name], k, samples[name])
        order = order[1:] + order[:1]
        done += k
    for name, values in samples.items():
        values.sort()
        sides[name].p50_c1.append(percentile(values, 50))
        sides[name].p99_c1.append(percentile(values, 99))


async def round_cn(
    calls: dict[str, Call],
    sides: dict[str, Side],
    n: int,
    concurrency: int,
    rotate: int,
    pids: dict[str, list[int]],
) -> None:
    """One round at concurrency ``concurrency``; ``pids``: the processes that serve each side
    (their CPU time per request is noted)."""
    order = list(calls)
    order = order[rotate % len(order) :] + order[: rotate % len(order)]
    for name in order:
        gc.collect()
        cpu = cpu_seconds(pids[name])
        rps, values, failures = await concurrent(calls[name], n, concurrency)
        sides[name].cpu_cn.append((cpu_seconds(pids[name]) - cpu) / n * 1e6)
        values.sort()
        side = sides[name]
        side.rps.append(rps)
        side.p50_cn.append(percentile(values, 50))
        side.p99_cn.append(percentile(values, 99))
        side.failures += failures


async def measure(
    args: argparse.Namespace, port: int, services: list[Service], hop: HopServer
) -> dict[str, Any]:
    budget = Budget(args.max_seconds)
    sides = {name: Side() for name in NAMES}
    reasons: dict[str, list[str]] = {name: [] for name in NAMES}
    function = voicefn.load_function(function_document(port))
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2, limit_per_host=0)
    async with (
        voicefn.Executor(allow_private_network=True) as ex,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        pids = {
            "service": [service.proc.pid for service in services],
            "hop": [hop.proc.pid],
            "direct": [os.getpid()],  # the Executor; no HTTP client or server on this side
        }
        path = await setup(session, services[0], port)
        urls = [service.url + path for service in services]
        calls = {
            "service": service_call(session, urls, services[0].key, reasons["service"]),
            "hop": service_call(session, [hop.url], None, reasons["hop"]),
            "direct": direct_call(ex, function, reasons["direct"]),
        }
        for name, call in calls.items():  # correctness before timing
            if not await call():
                raise RuntimeError(f"the {name} call failed: {reasons[name]}")
        rounds = {"c1": 0, "cn": 0}
        for call in calls.values():
            await sequential(call, args.warmup, [])
        for i in range(args.rounds):
            if i and budget.spent():
                break
            await round_c1(calls, sides, args.requests, args.batch)
            rounds["c1"] += 1
        c = args.concurrency
        for call in calls.values():
            await concurrent(call, max(args.warmup, c * 3), c)
        for i in range(args.rounds):
            if i and budget.spent():
                break
            await round_cn(calls, sides, args.requests, c, rotate=i, pids=pids)
            rounds["cn"] += 1
    return report(args, sides, rounds, reasons)


# ---------------------------------------------------------------------------- reporting


def report(
    args: argparse.Namespace,
    sides: dict[str, Side],
    rounds: dict[str, int],
    reasons: dict[str, list[str]],
) -> dict[str, Any]:
    c = args.concurrency
    rows = [
        ("latency_p50_c1", "latency p50, c=1", "us", 1e-3, "p50_c1"),
        ("latency_p99_c1", "latency p99, c=1", "us", 1e-3, "p99_c1"),
        (f"latency_p50_c{c}", f"latency p50, c={c}", "us", 1e-3, "p50_cn"),
        (f"latency_p99_c{c}", f"latency p99, c={c}", "us", 1e-3, "p99_cn"),
        (f"throughput_c{c}", f"throughput, c={c}", "req/s", 1.0, "rps"),
        (f"cpu_per_request_c{c}", f"server CPU/req, c={c}", "us", 1.0, "cpu_cn"),
    ]
    metrics: dict[str, Any] = {}
    for key, label, unit, scale, attr in rows:
        service, hop, direct = (
            statistics.median(getattr(sides[name], attr)) * scale for name in NAMES
        )
        metrics[key] = {
            "label": label,
            "unit": unit,
            "service": round(service, 1),
            "direct": round(direct, 1),
            "added": round(service - direct, 1),
            "ratio": round(service / direct, 3),
            "hop": round(hop, 1),
            "hop_added": round(hop - direct, 1),
            "hop_ratio": round(hop / direct, 3),
            "vs_hop": round(service / hop, 3),
            "range": {
                name: [round(min(values) * scale, 1), round(max(values) * scale, 1)]
                for name in NAMES
                for values in [getattr(sides[name], attr)]
            },
        }
    added = metrics["latency_p50_c1"]["added"]
    kept = metrics[f"throughput_c{c}"]["ratio"]
    hop_kept = metrics[f"throughput_c{c}"]["hop_ratio"]
    return {
        "config": {
            "requests_per_round": args.requests,
            "rounds_c1": rounds["c1"],
            "rounds_concurrent": rounds["cn"],
            "batch_c1": args.batch,
            "concurrency": c,
            "warmup": args.warmup,
            "service_processes": args.processes,
        },
        "environment": environment(
            implementation=platform.python_implementation(),
            aiohttp=aiohttp.__version__,
            voicefn=voicefn.__version__,
        ),
        "metrics": metrics,
        "targets": {
            "added_p50_c1": {"value_us": added, "target": "< 1000 us", "met": added < 1000},
            "throughput_kept": {"ratio": kept, "target": ">= 0.80", "met": kept >= 0.80},
            "hop_throughput_kept": {"ratio": hop_kept, "note": "the bare HTTP hop's own ratio"},
        },
        "failures": {name: side.failures for name, side in sides.items()},
        "failure_reasons": {name: sorted(set(r))[:5] for name, r in reasons.items()},
    }


def print_table(data: dict[str, Any]) -> None:
    cfg = data["config"]
    print(
        f"api_overhead: execute endpoint vs Executor.run, {cfg['requests_per_round']} requests "
        f"per round, {cfg['rounds_c1']}+{cfg['rounds_concurrent']} rounds, "
        f"{cfg['service_processes']} service process(es)"
    )
    print(environment_line(data["environment"], "aiohttp"))
    print()
    print(
        f"{'metric':<22}{'service':>12}{'direct':>12}{'added':>12}{'ratio':>8}"
        f"{'hop':>12}{'hop ratio':>10}{'vs hop':>8}"
    )
    for m in data["metrics"].values():
        unit = m["unit"]
        print(
            f"{m['label']:<22}{m['service']:>9.1f} {unit:<2}{m['direct']:>9.1f} {unit:<2}"
            f"{m['added']:>+9.1f} {unit:<2}{m['ratio']:>8.2f}"
            f"{m['hop']:>9.1f} {unit:<2}{m['hop_ratio']:>10.2f}{m['vs_hop']:>8.2f}"
        )
    t = data["targets"]
    print()
    print(
        f"added at p50, c=1: {t['added_p50_c1']['value_us']:.0f} us (target < 1000 us: "
        f"{'met' if t['added_p50_c1']['met'] else 'NOT met'}); throughput kept: "
        f"{t['throughput_kept']['ratio']:.2f} (target >= 0.80: "
        f"{'met' if t['throughput_kept']['met'] else 'NOT met'}); the bare HTTP hop keeps "
        f"{t['hop_throughput_kept']['ratio']:.2f}"
    )
    if any(data["failures"].values()):
        print(f"failures: {data['failures']} {data['failure_reasons']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per side per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=50, help="alternation batch at c=1")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="voicefn serve processes on one data directory; requests go to each in turn",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        LoopbackServer(args.max_seconds * 3) as loopback,
        HopServer(loopback.port, args.max_seconds * 3) as hop,
    ):
        services: list[Service] = []
        try:
            for _ in range(max(args.processes, 1)):
                services.append(Service(Path(tmp) / "data"))
            data = asyncio.run(measure(args, loopback.port, services, hop))
        finally:
            for service in services:
                service.close()
    emit(data, args.json, print_table)
    sys.exit(1 if any(data["failures"].values()) else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
