"""What the delivery tests share (imported by name: ``conftest`` is ambiguous across folders)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from voicefn.jobs import JobRecord, RetryPolicy
from voicefn.store import SqlStore, Workspace

#: How long a test waits for work a worker is doing (a busy 2-core machine); not a measurement.
PATIENCE_S = 60.0

#: Retries come quickly in tests (the backoff itself is tested on RetryPolicy).
FAST = RetryPolicy(max_attempts=8, base_delay_s=0.01, max_delay_s=0.05)


async def settled(
    store: SqlStore, ws: Workspace, ids: Sequence[str], states: tuple[str, ...] = ("succeeded",)
) -> list[JobRecord]:
    """The jobs once every one is in one of ``states`` (with their attempts); fails after
    :data:`PATIENCE_S` with where they are."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        async with store.read() as repos:
            jobs = [await repos.jobs.get(ws, i) for i in ids]
        found = [j for j in jobs if j is not None]
        if len(found) == len(ids) and all(j.state in states for j in found):
            return found
        if time.monotonic() > deadline:
            where = [(j.id, j.state, j.attempts, j.last_error) for j in found]
            raise AssertionError(f"jobs did not reach {states}: {where}")
        await asyncio.sleep(0.02)
