"""Issue 10 §4: several invocations of one tenant at once, each in a fresh child of the tenant's
worker, and back-to-back invocations, without giving up any isolation guarantee.

Ordering, not timing: concurrent invocations are shown to overlap by an egress callback that
holds every request until all of them have arrived (it could never return if they ran one after
another), and the per-tenant bound by the pool's own count of running invocations, read inside
that callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pysandbox_support import HOST, SKIP_REASON, fn, refuse_all

from voicefn.sandbox.python import Limits, Outcome, PythonSandbox

pytestmark = [
    pytest.mark.skipif(not HOST.full, reason=SKIP_REASON),
    pytest.mark.asyncio(loop_scope="module"),
]

CALM = Limits(timeout_s=20.0, cpu_s=3.0, memory_mb=64)
OK = {"status": 200, "headers": [["content-type", "application/json"]], "body": "e30="}  # {}

# Reads what an earlier invocation would have left behind, leaves its own traces, makes one
# request through egress (held by the test), and says which process it ran in.
TRACES = """
import builtins, os, sys, json
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
return {"status": response.status_code, "seen": seen, "pid": os.getpid(), "zygote": os.getppid()}
"""
CLEAN = {"global": None, "builtin": None, "environ": None, "json": None, "module": False}


class Barrier:
    """An egress callback that holds each request until ``parties`` requests are waiting, and
    records the pool's count of running invocations each time one arrives."""

    def __init__(self, sandbox: PythonSandbox, parties: int) -> None:
        self.sandbox = sandbox
        self.parties = parties
        self.arrived = 0
        self.all_here = asyncio.Event()
        self.running: list[int] = []

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.running.append(self.sandbox.stats()["running"])
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_here.set()
        await self.all_here.wait()
        return OK


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[PythonSandbox]:
    sb = PythonSandbox(warm_workers=1, max_concurrency=4)
    await sb.start()
    yield sb
    await sb.aclose()


async def traced(sb: PythonSandbox, me: str, egress: Any, tenant: str) -> Outcome:
    return await sb.run(
        fn(TRACES), "f", {}, {"variables": {"me": me}}, egress=egress, limits=CALM, tenant=tenant
    )


async def test_concurrent_invocations_of_one_tenant_each_run_in_a_fresh_child(
    sandbox: PythonSandbox,
) -> None:
    barrier = Barrier(sandbox, parties=4)
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(traced(sandbox, f"c{i}", barrier, "together") for i in range(4))),
        timeout=60,
    )
    for outcome in outcomes:
        assert outcome.ok, outcome
        assert outcome.value["seen"] == CLEAN  # nothing of a sibling, nothing of an earlier one
    # four processes at once (the barrier let none of them finish before all four asked), all
    # children of the tenant's one zygote
    assert len({o.value["pid"] for o in outcomes}) == 4
    assert len({o.value["zygote"] for o in outcomes}) == 1
    assert max(barrier.running) == 4


async def test_a_tenant_never_runs_more_than_max_concurrency_at_once(
    sandbox: PythonSandbox,
) -> None:
    barrier = Barrier(sandbox, parties=4)  # the first four wait for each other; the rest go
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(traced(sandbox, f"b{i}", barrier, "bounded") for i in range(10))),
        timeout=90,
    )
    assert all(o.ok and o.value["seen"] == CLEAN for o in outcomes), outcomes
    assert len(barrier.running) == 10
    assert max(barrier.running) == 4  # max_concurrency: the others waited for a slot
    assert sandbox.stats()["running"] == 0


async def test_back_to_back_invocations_never_see_each_other(sandbox: PythonSandbox) -> None:
    async def answer(request: dict[str, Any]) -> dict[str, Any]:
        return OK

    pids = set()
    for i in range(12):  # more than the children a zygote keeps forked ahead
        outcome = await traced(sandbox, f"s{i}", answer, "one-after-another")
        assert outcome.ok, outcome
        assert outcome.value["seen"] == CLEAN
        pids.add(outcome.value["pid"])
    assert len(pids) == 12


async def test_a_timeout_kills_only_its_own_invocation(sandbox: PythonSandbox) -> None:
    sleeper = asyncio.ensure_future(
        sandbox.run(
            fn("import time\ntime.sleep(100)"),
            "f",
            {},
            {},
            egress=refuse_all,
            limits=Limits(timeout_s=0.8),
            tenant="shared",
        )
    )

    async def after_the_sleeper(request: dict[str, Any]) -> dict[str, Any]:
        await sleeper  # this invocation is still running when its sibling is killed
        return OK

    sibling = await traced(sandbox, "sibling", after_the_sleeper, "shared")
    timed_out = await sleeper
    assert timed_out.error == "timeout"
    assert timed_out.stopped_by == "wall-clock"
    assert sibling.ok, sibling
    assert sibling.value["status"] == 200
    after = await traced(sandbox, "after", after_the_sleeper, "shared")
    assert after.ok, after
    assert after.value["zygote"] == sibling.value["zygote"]  # the worker itself survived


async def test_every_worker_loads_the_seccomp_filter_compiled_once(
    sandbox: PythonSandbox,
) -> None:
    """The escape suites run through this path: each child installs the zygote's compiled
    program with its own pid patched in (not libseccomp's per-child build)."""
    stats = sandbox.stats()
    assert stats["started"] >= 1
    assert stats["compiled_filter"] == stats["started"]
