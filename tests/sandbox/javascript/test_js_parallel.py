"""Issue 10: calls of one tenant run at once, each in a Worker of its own. Proved without
timing: every job's HTTP request is held by the egress callback until all of them have asked
(one at a time, the first would wait for ever and time out). While they overlap, no job sees
another's globals; a job that kills the process (a memory bomb) ends the others running with it
with an outcome (no one waits for ever), and the tenant's next call runs in a fresh process.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from voicefn.sandbox.javascript import Egress, JavaScriptSandbox, Limits, Outcome
from voicefn.sandbox.javascript._process import PARALLEL_JOBS

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

AT_ONCE = 4
OVERLAP = """
async function main(data) {
  const before = globalThis.owner ?? null;
  globalThis.owner = data.me;
  Object.prototype.owner = data.me;
  const response = await fetch("https://api.example.com/" + data.me);
  return { before, after: globalThis.owner, proto: ({}).owner, status: response.status };
}
"""


class Gate:
    """An egress callback that answers no request until ``n`` requests are waiting."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.urls: list[str] = []
        self.all_in = asyncio.Event()
        self.first_in = asyncio.Event()

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.urls.append(request["url"])
        self.first_in.set()
        if len(self.urls) >= self.n:
            self.all_in.set()
        await self.all_in.wait()
        return {"status": 200, "headers": [], "body": ""}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[JavaScriptSandbox]:
    sb = JavaScriptSandbox(spare_workers=2)
    await sb.start()
    yield sb
    await sb.aclose()


async def at_once(
    sb: JavaScriptSandbox, n: int, egress: Egress, tenant: str, prefix: str
) -> list[Outcome]:
    """``n`` calls of OVERLAP started at once (``me`` = prefix-i), their outcomes in order."""
    return await asyncio.gather(
        *(
            sb.run(
                OVERLAP,
                "main",
                {"me": f"{prefix}-{i}"},
                egress=egress,
                limits=Limits(timeout_s=60),
                tenant=tenant,
            )
            for i in range(n)
        )
    )


async def owner_left(sb: JavaScriptSandbox, egress: Egress, limits: Limits, tenant: str) -> Outcome:
    """A call of ``tenant`` that returns the global an earlier job left ('clean': none)."""
    return await sb.run(
        "async function main(d) { return globalThis.owner ?? 'clean'; }",
        "main",
        {},
        egress=egress,
        limits=limits,
        tenant=tenant,
    )


async def test_calls_of_one_tenant_run_at_once_each_in_its_own_worker(
    sandbox: JavaScriptSandbox,
) -> None:
    gate = Gate(AT_ONCE)
    outcomes = await at_once(sandbox, AT_ONCE, gate, "parallel", "job")
    assert sorted(gate.urls) == [f"https://api.example.com/job-{i}" for i in range(AT_ONCE)]
    for i, outcome in enumerate(outcomes):
        assert outcome.ok, outcome.detail
        me = f"job-{i}"
        assert outcome.value == {"before": None, "after": me, "proto": me, "status": 200}


async def test_a_job_that_kills_the_process_ends_the_jobs_beside_it(
    sandbox: JavaScriptSandbox,
) -> None:
    gate = Gate(2)  # the bystander's request is never answered: only the death ends it
    bomb = "async function main(d) { const a = []; for (;;) a.push(new Array(1e6).fill(1)); }"
    limits = Limits(timeout_s=60, memory_mb=64)
    bystander = asyncio.ensure_future(
        sandbox.run(OVERLAP, "main", {"me": "bystander"}, egress=gate, limits=limits, tenant="bomb")
    )
    await asyncio.wait_for(gate.first_in.wait(), 60)  # the bystander runs, held at the gate
    exploded = await sandbox.run(bomb, "main", {}, egress=gate, limits=limits, tenant="bomb")
    assert exploded.error == "memory", exploded
    ended = await asyncio.wait_for(bystander, 30)
    assert not ended.ok
    assert ended.error in ("memory", "crashed"), ended
    after = await owner_left(sandbox, gate, limits, "bomb")
    assert after.ok, after.detail
    assert after.value == "clean"


async def test_a_cancelled_call_ends_its_job_and_spares_the_others(
    sandbox: JavaScriptSandbox,
) -> None:
    """The caller of one job gives up while another job of the tenant runs beside it: the host
    is told to end the cancelled job, its late frames are dropped, and the job beside it
    finishes in the same process (same pid)."""
    gate = Gate(3)  # never opens by itself (two requests at the most): opened below
    limits = Limits(timeout_s=60)
    beside = asyncio.ensure_future(
        sandbox.run(OVERLAP, "main", {"me": "beside"}, egress=gate, limits=limits, tenant="c")
    )
    await asyncio.wait_for(gate.first_in.wait(), 60)  # the job beside runs, held at the gate
    process = sandbox._processes[("c", limits.memory_mb)]
    assert process.proc is not None
    pid = process.proc.pid
    held = Gate(1)  # tells when the job to cancel holds its request too

    async def egress(request: dict[str, Any]) -> dict[str, Any]:
        held.first_in.set()
        return await gate(request)

    first = asyncio.ensure_future(
        sandbox.run(OVERLAP, "main", {"me": "cancelled"}, egress=egress, limits=limits, tenant="c")
    )
    await asyncio.wait_for(held.first_in.wait(), 60)  # both run at once now
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert not beside.done()
    gate.all_in.set()  # the job beside gets its response now
    outcome = await asyncio.wait_for(beside, 60)
    assert outcome.ok, outcome.detail
    assert outcome.value == {"before": None, "after": "beside", "proto": "beside", "status": 200}
    assert sorted(gate.urls) == [
        "https://api.example.com/beside",
        "https://api.example.com/cancelled",
    ]
    assert process.proc is not None
    assert process.proc.pid == pid
    assert process.alive
    # the tenant's next call runs in that process too
    after = await owner_left(sandbox, gate, limits, "c")
    assert after.ok, after.detail
    assert after.value == "clean"
    assert process.proc.pid == pid


async def test_calls_beyond_parallel_jobs_wait_for_a_running_one_to_end(
    sandbox: JavaScriptSandbox,
) -> None:
    """PARALLEL_JOBS + 1 calls at once: the gate opens only when PARALLEL_JOBS requests wait,
    so that many ran at once; the last call's request comes only after the gate opened."""
    gate = Gate(PARALLEL_JOBS)
    arrived_after_open: list[bool] = []

    async def egress(request: dict[str, Any]) -> dict[str, Any]:
        arrived_after_open.append(gate.all_in.is_set())
        return await gate(request)

    outcomes = await at_once(sandbox, PARALLEL_JOBS + 1, egress, "queue-beyond", "q")
    assert all(o.ok for o in outcomes), [o.detail for o in outcomes]
    assert arrived_after_open == [False] * PARALLEL_JOBS + [True]
