"""``sandbox_latency.py``'s measuring: timed calls, interleaving, rows of figures, the table."""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from _common import Budget, percentile

if TYPE_CHECKING:
    from voicefn.sandbox.common import Outcome

Call = Callable[[], Awaitable[str | None]]  # None when the call returned the expected result
#: Cumulative CPU seconds of this process and the sandbox's own processes (see process_tree_cpu)
CpuClock = Callable[[], float]


class Function(NamedTuple):
    """A benchmark function: its source, entry point, arguments, and whether it makes a GET."""

    code: str
    entrypoint: str
    arguments: dict[str, Any]
    http: bool


# ------------------------------------------------------------------------------ figures


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
    target_stat: str = "p50"  # which figure the target is for: p50 or p99
    sandbox_ns: list[int] = field(default_factory=list)
    floor_ns: list[int] = field(default_factory=list)
    floor_note: str = ""
    # JavaScript: the isolate floor (a fresh bare Worker per job, _sandbox_floors.IsolateFloor)
    isolate_ns: list[int] = field(default_factory=list)
    isolate_note: str = ""
    # concurrent rows: each sandbox round's slowest call (which rounds the p99 comes from)
    round_max_ns: list[int] = field(default_factory=list)
    # What the sandbox itself reported per measured call (Outcome.timings, egress request ms).
    reported: dict[str, list[float]] = field(default_factory=dict)
    # CPU of this process and the sandbox's processes during the sandbox's blocks of calls
    cpu_s: float = 0.0
    cpu_calls: int = 0

    def report(self, outcome: Outcome) -> None:
        for key, value in outcome.timings.items():
            self.reported.setdefault(key, []).append(float(value))
        for request in outcome.http:
            if isinstance(request.get("ms"), int | float):
                self.reported.setdefault("egress_ms", []).append(float(request["ms"]))

    def to_json(self) -> dict[str, Any]:
        sandbox, floor = summary(self.sandbox_ns), summary(self.floor_ns)
        added = round(sandbox["p50_ms"] - floor["p50_ms"], 3) if sandbox and floor else None
        isolate = summary(self.isolate_ns)
        over_isolate = (
            round(sandbox["p50_ms"] - isolate["p50_ms"], 3) if sandbox and isolate else None
        )
        met = None
        if self.target_ms is not None and sandbox is not None:
            met = sandbox[f"{self.target_stat}_ms"] < self.target_ms
        return {
            "language": self.language,
            "scenario": self.scenario,
            "sandbox": sandbox,
            "floor": floor,
            "floor_note": self.floor_note or None,
            "added_p50_ms": added,
            "sandbox_round_max_ms": (
                [round(v / 1e6, 1) for v in self.round_max_ns] if self.round_max_ns else None
            ),
            "isolate_floor": isolate,
            "isolate_floor_note": self.isolate_note or None,
            "added_over_isolate_p50_ms": over_isolate,
            "target_ms": self.target_ms,
            "target_stat": self.target_stat,
            "target_met": met,
            "sandbox_cpu_per_call_ms": (
                round(self.cpu_s / self.cpu_calls * 1000, 2) if self.cpu_calls else None
            ),
            "sandbox_reported_p50_ms": {
                key: round(statistics.median(values), 3) for key, values in self.reported.items()
            },
        }


class Run(Budget):
    """The run's time budget (``--max-seconds``), its failures (what -> count) and notes."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.failures: Counter[str] = Counter()
        self.notes: list[str] = []

    def fail(self, what: str) -> None:
        self.failures[what] += 1


def process_tree_cpu(roots: list[int]) -> float:
    """CPU seconds (user + system, its reaped children's too) of ``roots`` and every process
    below them, from ``/proc`` (Linux; 0.0 elsewhere). A sandbox's children are reaped by its
    zygote, so their CPU stays in the tree: sampled before and after a block of calls, the
    difference is what the block cost the sandbox's processes."""
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    ticks, stack = 0, list(roots)
    while stack:
        pid = stack.pop()
        ticks += times.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return ticks / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ calls


def check_value(value: Any, http: bool) -> str | None:
    """None if ``value`` is what the benchmark functions return, else what is wrong."""
    if not isinstance(value, dict) or value.get("status") != "success":
        return f"unexpected result {str(value)[:200]}"
    if http and not (isinstance(value.get("order"), dict) and value["order"].get("order_id")):
        return f"unexpected HTTP result {str(value)[:200]}"
    return None


def sandbox_call(invoke: Callable[[], Awaitable[Outcome]], http: bool, row: Row | None) -> Call:
    """A sandboxed call: ``invoke()`` must end well with the expected value; ``row`` (if any)
    notes what the sandbox reported."""

    async def call() -> str | None:
        outcome = await invoke()
        if not outcome.ok:
            return f"{outcome.error}: {outcome.detail[:200]}"
        if row is not None:
            row.report(outcome)
        return check_value(outcome.value, http)

    return call


def floor_call(invoke: Callable[[], Awaitable[Any]], http: bool) -> Call:
    """A floor call: ``invoke()`` must return the expected value."""

    async def call() -> str | None:
        try:
            value = await invoke()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return check_value(value, http)

    return call


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
        if run.spent():
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


async def warm_rows(
    language: str,
    scenarios: list[tuple[str, Function, float]],
    sandbox: Callable[[Function, Row | None], Call],
    floor: Callable[[Function], Call] | None,
    floor_note: str,
    calls: int,
    gap_s: float,
    run: Run,
    rows: list[Row],
) -> None:
    """A row in ``rows`` per (label, function, target): 5 unmeasured calls a side, then
    ``interleaved``. ``sandbox(function, row)`` calls on a tenant whose worker stays warm.
    """
    for label, fn, target in scenarios:
        row = Row(language, label, target_ms=target, floor_note=floor_note)
        rows.append(row)
        fl = floor(fn) if floor is not None else None
        warm_up = sandbox(fn, None)
        for _ in range(5):
            await warm_up()
            await asyncio.sleep(gap_s)
            if fl is not None:
                await fl()
        await interleaved(row, sandbox(fn, row), fl, calls, gap_s, run)


def _sides(
    row: Row, sandbox: Call, floor: Call | None, isolate: Call | None, i: int
) -> list[tuple[Call, list[int], str]]:
    """The sides of block ``i``: sandbox, floor, isolate floor (those given), reversed every
    other block."""
    sides: list[tuple[Call, list[int], str]] = [(sandbox, row.sandbox_ns, "sandbox")]
    if floor is not None:
        sides.append((floor, row.floor_ns, "floor"))
    if isolate is not None:
        sides.append((isolate, row.isolate_ns, "isolate floor"))
    if i % 2:
        sides.reverse()
    return sides


async def back_to_back(
    row: Row,
    sandbox: Call,
    floor: Call | None,
    calls: int,
    burst: int,
    pause_s: float,
    run: Run,
    cpu: CpuClock | None = None,
    isolate: Call | None = None,
) -> None:
    """``calls`` sandbox calls with no pause between them, in blocks of ``burst`` (0: one
    block), each block followed by ``pause_s``; the floor's calls likewise, in blocks of their
    own (sandbox and floor blocks alternate, ABBA), so no sandbox call ever waits for a floor
    call; with ``isolate``, the isolate floor's calls too (ABC CBA ...). With ``cpu``, the CPU
    the sandbox's blocks took is added up in ``row``."""
    gc.collect()
    block = burst if burst > 0 else calls
    done = 0
    i = 0
    while done < calls and not run.spent():
        n = min(block, calls - done)
        sides = _sides(row, sandbox, floor, isolate, i)
        for call, samples, side in sides:
            before = cpu() if cpu is not None and call is sandbox else None
            for _ in range(n):
                await timed(call, samples, run, f"{row.language} {row.scenario} {side}")
            if before is not None and cpu is not None:
                row.cpu_s += cpu() - before
                row.cpu_calls += n
            await asyncio.sleep(pause_s)
        done += n
        i += 1


async def concurrent_rounds(
    row: Row,
    sandbox: Call,
    floor: Call | None,
    concurrency: int,
    rounds: int,
    pause_s: float,
    run: Run,
    cpu: CpuClock | None = None,
    isolate: Call | None = None,
) -> None:
    """``rounds`` times: ``concurrency`` sandbox calls started at once, each timed from the
    round's start to its own end; then as many floor calls at once (and isolate floor calls,
    with ``isolate``), the order alternating; ``pause_s`` after each.
    With ``cpu``, the CPU the sandbox's rounds took is added up in ``row``."""
    gc.collect()
    for i in range(rounds):
        if run.spent():
            return
        for call, samples, side in _sides(row, sandbox, floor, isolate, i):
            label = f"{row.language} {row.scenario} {side}"
            before = cpu() if cpu is not None and call is sandbox else None
            already = len(samples)
            await asyncio.gather(*(timed(call, samples, run, label) for _ in range(concurrency)))
            if call is sandbox and len(samples) > already:
                row.round_max_ns.append(max(samples[already:]))
            if before is not None and cpu is not None:
                row.cpu_s += cpu() - before
                row.cpu_calls += concurrency
            await asyncio.sleep(pause_s)


# ------------------------------------------------------------------------------ table


def _pair(s: dict[str, Any] | None) -> str:
    return "-" if s is None else f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}"


def _target(r: dict[str, Any]) -> str:
    if r["target_ms"] is None:
        return "-"
    what = f"{r['target_stat']} < {r['target_ms']:g} ms"
    if r["target_met"] is None:
        return f"{what}: no data"
    return f"{what}: {'met' if r['target_met'] else 'NOT met'}"


def print_table(rows: list[dict[str, Any]], header: str, run: Run) -> None:
    print(header)
    columns = (
        "scenario",
        "n",
        "sandbox p50 / p99 ms",
        "floor p50 / p99 ms",
        "added p50",
        "isolate floor p50 / p99",
        "target",
    )
    table = [
        (
            f"{r['language']} {r['scenario']}",
            str(r["sandbox"]["n"]) if r["sandbox"] else "0",
            _pair(r["sandbox"]),
            _pair(r["floor"]),
            "-" if r["added_p50_ms"] is None else f"+{r['added_p50_ms']:.2f} ms",
            _pair(r.get("isolate_floor")),
            _target(r),
        )
        for r in rows
    ]
    widths = [max([len(c), *(len(t[i]) for t in table)]) for i, c in enumerate(columns)]
    for t in (columns, *table):
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip())
    for r in rows:
        if not r["floor_note"] and r["floor"] is None:
            print(f"note: {r['language']} {r['scenario']}: no floor measured")
    for note in sorted({r["isolate_floor_note"] for r in rows if r.get("isolate_floor_note")}):
        print(f"isolate floor: {note}")
    for r in rows:
        reported = r["sandbox_reported_p50_ms"]
        keys = [k for k in ("wait_ms", "run_ms", "egress_ms", "cold_start_ms") if k in reported]
        if keys:
            parts = ", ".join(f"{k} {reported[k]:.2f}" for k in keys)
            print(f"sandbox-reported p50: {r['language']} {r['scenario']}: {parts}")
    for r in rows:
        if r.get("sandbox_round_max_ms"):
            rounds = ", ".join(f"{v:g}" for v in r["sandbox_round_max_ms"])
            print(f"sandbox rounds' slowest call (ms): {r['language']} {r['scenario']}: {rounds}")
    for r in rows:
        if r["sandbox_cpu_per_call_ms"] is not None:
            print(
                f"sandbox CPU per call: {r['language']} {r['scenario']}: "
                f"{r['sandbox_cpu_per_call_ms']:.2f} ms (this process + the sandbox's processes)"
            )
    for note in run.notes:
        print(f"note: {note}")
    if run.exhausted:
        print("note: --max-seconds reached: some scenarios have fewer samples")
    for what, count in run.failures.items():
        print(f"FAILED x{count}: {what}")
