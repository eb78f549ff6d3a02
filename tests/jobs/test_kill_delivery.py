"""No post-call job is lost when the service dies: ``voicefn serve`` is killed with SIGKILL
while deliveries are in flight to a slow receiver that sometimes answers 503, started again on
the same database, and every job ends delivered; the receiver, which deduplicates on
``Idempotency-Key``, processed each job exactly once (and every request it got was signed).
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from jobs_support import PATIENCE_S
from receivers import Receiver
from sqlalchemy import func, select

from voicefn.jobs import HttpJob
from voicefn.store import SecretBox, SqlStore, open_store
from voicefn.store.models_jobs import JobRow
from voicefn.webhooks import verify

sys.path.insert(0, str(Path(__file__).parent.parent / "server"))

from live import serve_process

JOBS = 160
SECRET_KEY = "kill-test-secret-key-0123456789"
ENV = {
    "VOICEFN_SECRET_KEY": SECRET_KEY,
    "VOICEFN_JOBS_CONCURRENCY": "8",
    "VOICEFN_JOBS_LEASE_S": "2",  # what a dead worker held is due again 2 s later
    "VOICEFN_JOBS_BASE_DELAY_S": "0.05",
    "VOICEFN_JOBS_MAX_DELAY_S": "0.5",
    "VOICEFN_JOBS_MAX_ATTEMPTS": "100",  # a flaky receiver never dead-letters a job here
    "VOICEFN_JOBS_POLL_S": "0.1",
}


async def _count(store: SqlStore, state: str) -> int:
    async with store.db.read() as session:
        n = await session.scalar(
            select(func.count()).select_from(JobRow).where(JobRow.state == state)
        )
    return int(n or 0)


def _wait(what: str, done: object) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_sigkill_in_flight_loses_no_job_and_no_key_is_processed_twice(
    tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    receiver.slow_s = 0.1
    receiver.flaky = 0.25
    data = tmp_path / "data"
    args = ("--allow-private-network", "--database-url", db_url)

    async def open_db() -> SqlStore:
        return await open_store(db_url, SecretBox([SECRET_KEY], "test"), migrate=False)

    with serve_process(data, *args, env=ENV) as first:

        async def enqueue() -> tuple[list[str], list[str]]:
            store = await open_db()
            try:
                async with store.write() as repos:
                    ws = await repos.workspaces.by_name("default")
                    assert ws is not None
                    ids = await repos.jobs.enqueue(
                        ws,
                        "CA-kill",
                        [HttpJob(receiver.url + "/hook", {"n": n}) for n in range(JOBS)],
                    )
                async with store.read() as repos:
                    secrets = await repos.signing_keys.secrets_for(ws.id, None)
                return ids, secrets
            finally:
                await store.close()

        ids, _ = asyncio.run(enqueue())
        _wait("deliveries to start", lambda: len(receiver.processed) >= 30)
        _wait("a delivery in flight", lambda: receiver.inflight > 0)
        first.kill()  # SIGKILL: no shutdown, no hand-back of claims

    processed_at_kill = len(receiver.processed)
    assert processed_at_kill < JOBS, "everything was delivered before the kill: nothing proven"

    async def running_after_kill() -> int:
        store = await open_db()
        try:
            return await _count(store, "running")
        finally:
            await store.close()

    held = asyncio.run(running_after_kill())
    assert held > 0  # claimed by the dead process: only its lease brings them back

    with serve_process(data, *args, env=ENV):

        async def all_delivered() -> tuple[int, int, list[str]]:
            store = await open_db()
            try:
                deadline = time.monotonic() + PATIENCE_S * 2
                while await _count(store, "succeeded") < JOBS:
                    assert time.monotonic() < deadline, "the jobs were not all delivered"
                    await asyncio.sleep(0.05)
                async with store.read() as repos:
                    ws = await repos.workspaces.by_name("default")
                    assert ws is not None
                    secrets = await repos.signing_keys.secrets_for(ws.id, None)
                    attempts = [(await repos.jobs.get(ws, i)) for i in ids]
                retried = sum(1 for j in attempts if j is not None and j.attempts > 1)
                return await _count(store, "dead"), retried, secrets
            finally:
                await store.close()

        dead, retried, secrets = asyncio.run(all_delivered())

    assert dead == 0
    assert retried > 0  # the 503s and the killed deliveries were attempted again
    assert set(receiver.processed) == set(ids)  # every job delivered ...
    assert set(receiver.processed.values()) == {1}  # ... and no key processed twice
    assert sorted(body["n"] for body in receiver.bodies) == list(range(JOBS))  # stable keys
    for arrival in receiver.at("/hook"):
        verify(arrival.headers, arrival.body, secrets)  # signed, by the same key throughout
