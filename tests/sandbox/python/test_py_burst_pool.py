"""Issue 10 §4: a tenant's zygote keeps as many children forked ahead as its last burst was large.

After a burst (the tenant's calls running and waiting for a slot at once) larger than
``prefork``, the zygote forks ahead up to the burst's size (at most ``max_prefork``) while
nothing runs, keeps them for ``burst_hold_s`` after the burst, then closes the extra ones. The
next burst takes children already forked: none is forked while it runs. Nothing of one
invocation reaches another through the bigger pool, and the limits count its children.

Ordering, not timing: the tests wait for the pool's own counts (``stats()``) to reach a state,
and read them inside an egress callback that holds every call of a burst until all of them
have arrived.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from pysandbox_support import HOST, SKIP_REASON, fn

from voicefn.sandbox.python import Limits, Outcome, PythonSandbox
from voicefn.sandbox.python.policy import ChildLimits

pytestmark = [
    pytest.mark.skipif(not HOST.full, reason=SKIP_REASON),
    pytest.mark.asyncio(loop_scope="module"),
]

CALM = Limits(timeout_s=30.0, cpu_s=5.0, memory_mb=64)
OK = {"status": 200, "headers": [["content-type", "application/json"]], "body": "e30="}  # {}
SETTLE_S = 120.0  # a bound for a state to be reached, never a measure

# Reads what an earlier invocation would have left behind, leaves its own traces, makes one
# request through egress, and says which process it ran in and its RLIMIT_NPROC.
TRACES = """
import builtins, os, resource, sys, json
seen = {
    "global": globals().get("LEFT_BEHIND"),
    "builtin": getattr(builtins, "left_behind", None),
    "environ": os.environ.get("LEFT_BEHIND"),
    "json": getattr(json, "left_behind", None),
    "module": "left_behind_module" in sys.modules,
}
globals()["LEFT_BEHIND"] = ctx.variables["me"]
builtins.left_behind = ctx.variables["me"]
os.environ["LEFT_BEHIND"] = ctx.variables["me"]
json.left_behind = ctx.variables["me"]
sys.modules["left_behind_module"] = json
response = await ctx.http.get("https://api.example.com/hold")
return {
    "status": response.status_code,
    "seen": seen,
    "pid": os.getpid(),
    "zygote": os.getppid(),
    "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
}
"""
CLEAN = {"global": None, "builtin": None, "environ": None, "json": None, "module": False}

THREADS = """
import threading, time
threads = [threading.Thread(target=time.sleep, args=(0.01,)) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
return {"status": "ok", "threads": len(threads)}
"""

# What a child's scheduling is, and whether it can claim more of the CPU (or change it at all).
SCHEDULING = """
import os
refused = []
for name, attempt in (
    ("SCHED_OTHER", lambda: os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))),
    ("SCHED_FIFO", lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))),
    ("SCHED_IDLE", lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))),
    ("nice -5", lambda: os.setpriority(os.PRIO_PROCESS, 0, -5)),
):
    try:
        attempt()
    except PermissionError:
        refused.append(name)
return {"policy": os.sched_getscheduler(0), "refused": refused}
"""

THREAD_BOMB = """
import threading, time
threads = []
while True:
    t = threading.Thread(target=time.sleep, args=(30,), daemon=True)
    t.start()
    threads.append(t)
"""


class Gate:
    """An egress callback that holds each request until ``parties`` requests are waiting,
    and records the sandbox's stats each time one arrives."""

    def __init__(self, sandbox: PythonSandbox, parties: int) -> None:
        self.sandbox = sandbox
        self.parties = parties
        self.arrived = 0
        self.all_here = asyncio.Event()
        self.stats: list[dict[str, int]] = []

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.stats.append(self.sandbox.stats())
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_here.set()
        await self.all_here.wait()
        return OK


async def answer(request: dict[str, Any]) -> dict[str, Any]:
    return OK


async def traced(sb: PythonSandbox, me: str, egress: Any, tenant: str) -> Outcome:
    return await sb.run(
        fn(TRACES), "f", {}, {"variables": {"me": me}}, egress=egress, limits=CALM, tenant=tenant
    )


async def burst(sb: PythonSandbox, n: int, tenant: str, egress: Any, tag: str) -> list[Outcome]:
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(traced(sb, f"{tag}{i}", egress, tenant) for i in range(n))), SETTLE_S
    )
    for outcome in outcomes:
        assert outcome.ok, outcome
        assert outcome.value["seen"] == CLEAN  # nothing of a sibling, nothing of an earlier one
    return outcomes


async def settled(sb: PythonSandbox, ok: Callable[[dict[str, int]], bool]) -> dict[str, int]:
    """Wait until the stats satisfy ``ok`` and no child is being forked; return them."""

    async def poll() -> dict[str, int]:
        while True:
            stats = sb.stats()
            if stats["forking"] == 0 and ok(stats):
                return stats
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(poll(), SETTLE_S)


def worker_pythons(sb: PythonSandbox, tenant: str) -> int:
    """Processes of the tenant's worker running python (its zygote and every child), from the
    host's /proc."""
    pool = sb._pool
    assert pool is not None
    worker = pool._tenants[tenant]
    assert worker.proc is not None
    found, frontier = 0, [worker.proc.pid]
    while frontier:
        pid = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue  # gone meanwhile
        name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
        found += name.startswith("python") and state not in "ZX"  # exited, not yet reaped
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    frontier += [int(c) for c in fh.read().split()]
            except OSError:
                continue
    return found


@pytest_asyncio.fixture(loop_scope="module")
async def sandbox() -> AsyncIterator[PythonSandbox]:
    # one per test, for one tenant: its stats are that tenant's. Bursts are kept for the
    # default 30 s, longer than a test takes to look at them.
    sb = PythonSandbox(warm_workers=0, max_concurrency=3, prefork=1, max_prefork=5)
    await sb.start()
    yield sb
    await sb.aclose()


async def test_the_pool_grows_to_a_burst_and_the_next_burst_forks_nothing(
    sandbox: PythonSandbox,
) -> None:
    tenant = "grows"
    await traced(sandbox, "first", answer, tenant)
    before = await settled(sandbox, lambda s: s["forked_ahead"] == 1)
    assert before["forked_ahead"] == sandbox.prefork == 1
    # four at once: three run (max_concurrency), one waits for a slot -- a burst of four
    await burst(sandbox, 4, tenant, answer, "a")
    grown = await settled(sandbox, lambda s: s["forked_ahead"] >= 4)
    assert grown["forked_ahead"] == 4  # the burst's size, not the cap
    assert worker_pythons(sandbox, tenant) == 1 + 4  # the zygote and the children forked ahead
    # the next burst of three takes children already forked: not one fork while it runs
    gate = Gate(sandbox, parties=3)
    await burst(sandbox, 3, tenant, gate, "b")
    forks = [(s["forked"], s["forking"]) for s in gate.stats]
    assert forks == [(grown["forked"], 0)] * 3
    assert [s["running"] for s in gate.stats][-1] == 3
    # a burst larger than max_prefork (5): capped
    await burst(sandbox, 9, tenant, answer, "c")
    capped = await settled(sandbox, lambda s: s["forked_ahead"] >= 5)
    assert capped["forked_ahead"] == sandbox.max_prefork == 5
    assert worker_pythons(sandbox, tenant) == 1 + 5


async def test_nothing_of_an_invocation_reaches_another_through_the_grown_pool(
    sandbox: PythonSandbox,
) -> None:
    tenant = "isolated-bursts"
    outcomes = await burst(sandbox, 5, tenant, answer, "first")
    await settled(sandbox, lambda s: s["forked_ahead"] >= 5)
    # the children forked ahead (and rehearsed, one HTTP request included: this tenant makes
    # them) after the first burst run the second; each sees nothing of any earlier call
    outcomes += await burst(sandbox, 5, tenant, answer, "second")
    outcomes += [await traced(sandbox, f"after{i}", answer, tenant) for i in range(3)]
    assert len({o.value["pid"] for o in outcomes}) == len(outcomes) == 13  # a fresh child each
    assert len({o.value["zygote"] for o in outcomes}) == 1


async def test_rlimit_nproc_counts_the_children_forked_ahead(sandbox: PythonSandbox) -> None:
    tenant = "limits"
    await burst(sandbox, 6, tenant, answer, "fill")
    await settled(sandbox, lambda s: s["forked_ahead"] >= 5)
    bound = sandbox.children_bound()
    assert bound == 2 + 2 * sandbox.max_concurrency + sandbox.max_prefork
    assert worker_pythons(sandbox, tenant) <= bound
    # every child's RLIMIT_NPROC leaves room for the full pool besides its own threads
    outcome = await traced(sandbox, "nproc", answer, tenant)
    assert outcome.ok, outcome
    assert outcome.value["nproc"] == ChildLimits.nproc + bound
    # with the pool full, calls that start threads run side by side; a thread bomb is still
    # stopped by RLIMIT_NPROC, and the tenant's next burst runs
    threaded = await asyncio.gather(
        *(
            sandbox.run(fn(THREADS), "f", {}, {}, egress=answer, limits=CALM, tenant=tenant)
            for _ in range(3)
        ),
    )
    assert all(o.ok and o.value == {"status": "ok", "threads": 8} for o in threaded), threaded
    bomb = await sandbox.run(
        fn(THREAD_BOMB), "f", {}, {}, egress=answer, limits=CALM, tenant=tenant
    )
    assert bomb.error == "exception", bomb
    assert bomb.stopped_by == "rlimit-nproc"
    after = await burst(sandbox, 3, tenant, answer, "after")
    assert all(o.value["seen"] == CLEAN for o in after)


async def test_children_run_sched_batch_and_cannot_change_it(sandbox: PythonSandbox) -> None:
    outcome = await sandbox.run(
        fn(SCHEDULING), "f", {}, {}, egress=answer, limits=CALM, tenant="scheduling"
    )
    assert outcome.ok, outcome
    assert outcome.value == {
        "policy": os.SCHED_BATCH,
        "refused": ["SCHED_OTHER", "SCHED_FIFO", "SCHED_IDLE", "nice -5"],
    }


async def test_the_extra_children_go_once_the_burst_is_old() -> None:
    tenant = "shrinks"
    async with PythonSandbox(
        warm_workers=0, max_concurrency=3, prefork=1, max_prefork=6, burst_hold_s=0.5
    ) as sb:
        await traced(sb, "first", answer, tenant)
        before = await settled(sb, lambda s: s["forked_ahead"] == 1)
        await burst(sb, 6, tenant, answer, "a")
        # after the burst the zygote forked six ahead; half a second after it, the five
        # beyond prefork were closed: one waits, and the others' processes are gone
        # (six children ran the burst, one of them forked before it; six were forked after it)
        after = await settled(
            sb,
            lambda s: s["forked_ahead"] == 1 and s["forked"] >= before["forked"] + 5 + 6,
        )
        assert after["forked_ahead"] == 1

        async def gone() -> None:
            while True:
                if worker_pythons(sb, tenant) == 1 + 1:  # the zygote and the one left
                    return
                await asyncio.sleep(0.02)

        await asyncio.wait_for(gone(), SETTLE_S)
        # and the tenant's next calls still run, each in a fresh child
        outcomes = await burst(sb, 2, tenant, answer, "b")
        assert len({o.value["pid"] for o in outcomes}) == 2
