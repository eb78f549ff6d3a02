"""The tenant's frame reader while no job runs.

A Deno process that dies while idle: the reader sees the connection end, kills what is left of
the process and releases everything it held (socket, stderr task, cgroup); the tenant's next job
runs promptly in a fresh process instead of waiting for a reader that is gone (which ended in
the supervisor's backstop kill, reported as a timeout).

A job allowed a large result (``max_output_bytes`` above the 8 MiB frame an idle process may
send) gets it, also when it starts while the reader waits with nothing running: the reader
bounds each frame when its header arrives, by the jobs running then.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from voicefn.sandbox.javascript import JavaScriptSandbox, Limits
from voicefn.sandbox.javascript._host import _tree

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

CODE = "async function main(d) { return d.n * 2; }"
LIMITS = Limits(timeout_s=20)
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


def deno_pids(root: int) -> list[int]:
    """The Deno processes below ``root`` (bubblewrap's tree), by their executable's name."""
    found = []
    for pid in _tree(root):
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
                if fh.read().strip() == "deno":
                    found.append(pid)
        except OSError:
            continue
    return found


async def test_a_process_killed_while_idle_is_released_and_the_next_job_runs_fresh(
    sandbox: JavaScriptSandbox,
) -> None:
    first = await sandbox.run(CODE, "main", {"n": 1}, egress=no_egress, limits=LIMITS, tenant="i")
    assert first.ok, first.detail
    process = sandbox._processes[("i", LIMITS.memory_mb)]
    assert process.proc is not None
    assert process.reader_task is not None
    old_proc, old_writer, old_reader_task = process.proc, process.writer, process.reader_task
    assert old_writer is not None
    denos = deno_pids(old_proc.pid)
    assert denos, "no Deno process found below the tenant's process"
    for pid in denos:
        os.kill(pid, signal.SIGKILL)
    # the reader sees the connection end (no job runs) and finishes
    await asyncio.wait_for(asyncio.shield(old_reader_task), 30)
    # it released what the dead process held: its socket is closed, nothing is left to leak
    assert old_writer.is_closing()
    assert process.writer is not old_writer
    after = await sandbox.run(CODE, "main", {"n": 21}, egress=no_egress, limits=LIMITS, tenant="i")
    # not the backstop's verdict ("timeout", supervisor-kill): a prompt, ordinary result
    assert after.stopped_by is None, (after.stopped_by, after.detail)
    assert after.ok, after.detail
    assert after.value == 42
    assert process.proc is not None
    assert process.proc is not old_proc
    assert process.reader_task is not old_reader_task


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
