"""A tenant process holds at most MAX_WORKERS (20) Workers, its running jobs' and its ready
ones together, so parallel jobs and a pre-warmed pool fit in its memory limit (one OOM would end
every call running in it). Proved with spare_workers=8: after a burst of 16 (the pool wants 16
ready), with PARALLEL_JOBS (8) jobs held at an egress gate, the process's Worker threads (Deno
names them ``worker-N``) never number more than MAX_WORKERS while the pool refills beside them
(8 running + 12 ready); a refill that counted only ready Workers would hold 8 + 16.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from jssandbox_threads import worker_threads

from voicefn.sandbox.javascript import JavaScriptSandbox, Limits
from voicefn.sandbox.javascript._launch import MAX_WORKERS
from voicefn.sandbox.javascript._process import PARALLEL_JOBS

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

SPARES = 8
HELD_JOBS = PARALLEL_JOBS  # they all run at once
FIRST_BURST = 16  # its demand + HELD_JOBS exceed MAX_WORKERS
HELD = """
async function main(data) {
  const response = await fetch("https://api.example.com/" + data.me);
  return response.status;
}
"""
POLL_S = 0.05
SETTLED_POLLS = 10  # polls in a row with the Worker threads all asleep and none added


class Gate:
    """Holds every request until ``n`` are waiting and :meth:`open` was called."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.waiting = 0
        self.all_in = asyncio.Event()
        self.opened = asyncio.Event()

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.waiting += 1
        if self.waiting >= self.n:
            self.all_in.set()
        await self.opened.wait()
        return {"status": 200, "headers": [], "body": ""}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[JavaScriptSandbox]:
    # the fresh Workers' cap is what is measured: no realm fast path
    sb = JavaScriptSandbox(spare_workers=SPARES, spare_processes=0, realms=False)
    await sb.start()
    yield sb
    await sb.aclose()


async def test_running_and_ready_workers_stay_within_the_cap(sandbox: JavaScriptSandbox) -> None:
    assert max(SPARES, FIRST_BURST) + HELD_JOBS > MAX_WORKERS  # what the old refill would hold
    limits = Limits(timeout_s=120)
    gate = Gate(HELD_JOBS)  # the first burst makes no request
    # A first burst, more than run at once: the pool's demand becomes 16.
    first = await asyncio.gather(
        *(
            sandbox.run(
                "function main(d) { return d.n; }", "main", {"n": i}, egress=gate, tenant="cap"
            )
            for i in range(FIRST_BURST)
        )
    )
    assert [o.value for o in first] == list(range(FIRST_BURST)), [o.detail for o in first]
    process = sandbox._processes[("cap", limits.memory_mb)]
    assert process.proc is not None
    pid = process.proc.pid
    # Until the pool holds the burst's demand, all asleep: the burst's own Workers are gone by
    # then, so what the watch below counts is running and ready Workers only.
    settled = 0
    for _ in range(int(120 / POLL_S)):
        threads = worker_threads(pid)
        full = len(threads) == FIRST_BURST and set(threads.values()) == {"S"}
        settled = settled + 1 if full else 0
        if settled >= SETTLED_POLLS:
            break
        await asyncio.sleep(POLL_S)
    else:
        pytest.fail(f"the pool never held {FIRST_BURST} ready Workers: {worker_threads(pid)}")
    jobs = [
        asyncio.ensure_future(
            sandbox.run(HELD, "main", {"me": f"j{i}"}, egress=gate, limits=limits, tenant="cap")
        )
        for i in range(HELD_JOBS)
    ]
    try:
        await asyncio.wait_for(gate.all_in.wait(), 120)  # all 8 run, each in a Worker
        most = 0
        settled = 0
        seen: set[str] = set()
        # Watch the pool refill beside the held jobs until it stops: every Worker thread asleep
        # and no new one for SETTLED_POLLS polls in a row (no fixed wait).
        for _ in range(int(120 / POLL_S)):
            threads = worker_threads(pid)
            most = max(most, len(threads))
            assert len(threads) <= MAX_WORKERS, sorted(threads)
            new = set(threads) - seen
            seen |= new
            asleep = all(state == "S" for state in threads.values())
            settled = settled + 1 if asleep and not new else 0
            if settled >= SETTLED_POLLS and len(threads) >= HELD_JOBS:
                break
            await asyncio.sleep(POLL_S)
        else:
            pytest.fail(f"the Worker threads never settled: {sorted(worker_threads(pid))}")
        # the refill did run: ready Workers beside the running ones, up to the cap
        assert most == MAX_WORKERS, most
    finally:
        gate.opened.set()
        outcomes = await asyncio.gather(*jobs)
    assert all(o.ok and o.value == 200 for o in outcomes), [o.detail for o in outcomes]
