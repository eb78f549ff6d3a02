"""A realm Worker's lifetime: it runs at most 1,000 jobs (each in a realm of its own). 50 jobs
before its last it asks for a successor, and goes once that one is ready, so no job fails or
finds no realm Worker. (Why a realm Worker goes at all: whatever grows in an isolate across
jobs, its compiled code and caches, stays bounded.)"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from jssandbox_threads import worker_threads

from voicefn.sandbox.javascript import JavaScriptSandbox, Limits

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

JOBS_PER_WORKER = 1000  # runtime/realm_worker.js MAX_JOBS_PER_WORKER
TENANT = "lifetime"


async def no_egress(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no network in this test"}


async def test_a_realm_worker_goes_after_its_last_job_and_its_successor_is_ready() -> None:
    code = "async function main(d) { return d.i * 2 }"
    sb = JavaScriptSandbox(spare_workers=1, spare_processes=0)
    await sb.start()
    try:
        first = await sb.run(code, "main", {"i": 0}, egress=no_egress, tenant=TENANT)
        assert first.runner == "realm", first
        process = sb._processes[(TENANT, Limits().memory_mb)]
        assert process.proc is not None
        before = set(worker_threads(process.proc.pid))
        for i in range(1, JOBS_PER_WORKER + 20):
            outcome = await sb.run(code, "main", {"i": i}, egress=no_egress, tenant=TENANT)
            assert outcome.ok, outcome
            assert outcome.value == i * 2
            assert outcome.runner == "realm", outcome
        after = set(worker_threads(process.proc.pid))
        # the first realm Worker is gone and one started after it took its place (Deno numbers
        # every new Worker thread anew); the fresh-Worker pool is as it was
        assert before - after, (before, after)
        assert after - before, (before, after)
        assert len(after) == len(before), (before, after)
    finally:
        await sb.aclose()
