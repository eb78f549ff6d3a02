"""A job allowed a large result (``max_output_bytes`` above the 8 MiB frame an idle process may
send) gets it, also when it starts while the tenant's frame reader waits with nothing running:
the reader bounds each frame when its header arrives, by the jobs running then."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from voicefn.sandbox.javascript import JavaScriptSandbox, Limits

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

SIZE = 12_000_000
BIG = 'async function main(d) { return "x".repeat(d.size); }'


async def no_egress(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no network in this test"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[JavaScriptSandbox]:
    sb = JavaScriptSandbox(spare_workers=1, spare_processes=0)
    await sb.start()
    yield sb
    await sb.aclose()


async def test_a_result_larger_than_the_idle_frame_bound_started_while_idle(
    sandbox: JavaScriptSandbox,
) -> None:
    limits = Limits(timeout_s=60, max_output_bytes=16 << 20)
    small = await sandbox.run(
        "async function main(d) { return 1; }",
        "main",
        {},
        egress=no_egress,
        limits=limits,
        tenant="big",
    )
    assert small.ok, small.detail  # the process is up; its reader now waits, no job running
    process = sandbox._processes[("big", limits.memory_mb)]
    assert process.proc is not None
    pid = process.proc.pid
    big = await sandbox.run(
        BIG, "main", {"size": SIZE}, egress=no_egress, limits=limits, tenant="big"
    )
    assert big.ok, big.detail
    assert isinstance(big.value, str)
    assert len(big.value) == SIZE
    assert process.proc is not None
    assert process.proc.pid == pid  # no protocol violation killed the process
    assert process.alive
