"""The DBOS Transact side of ``post_call_delivery.py --engine dbos``: the same delivery (one
signed JSON POST, Idempotency-Key = the workflow id) as a one-step workflow on a DBOS queue,
its system database on the same SQLite file or PostgreSQL database.

``run_worker`` is a worker process (DBOS launched, the queue polled every 0.05 s, up to
``concurrency`` workflows at once); ``enqueue_many``/``enqueue_one`` are the client side
(``DBOSClient``); ``stats`` reads the outcomes from DBOS's own tables.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

QUEUE = "deliveries"
WORKFLOW = "deliver"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RECORD = {
    "call_id": "CA0",
    "status": "completed",
    "transcript": [{"role": "agent", "text": "Bye!"}],
}


def run_worker(url: str, receiver: str, concurrency: int) -> None:
    import aiohttp
    from dbos import DBOS, DBOSConfig

    from voicefn.webhooks import signature_headers

    config: DBOSConfig = {"name": "bench", "system_database_url": url, "log_level": "WARNING"}
    DBOS(config=config)
    session: dict[str, aiohttp.ClientSession] = {}

    @DBOS.step(retries_allowed=True, max_attempts=8, interval_seconds=1.0, backoff_rate=2.0)
    async def post(n: int) -> int:
        wid = DBOS.workflow_id or ""
        body = json.dumps({**RECORD, "n": n}, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": wid}
        headers.update(signature_headers(wid, body, SECRET))
        if "s" not in session:
            session["s"] = aiohttp.ClientSession()
        async with session["s"].post(receiver, data=body, headers=headers) as response:
            await response.read()
            if response.status >= 500 or response.status in (408, 425, 429):
                raise RuntimeError(f"status {response.status}")
            return response.status

    @DBOS.workflow(name=WORKFLOW)
    async def deliver(n: int) -> int:
        return await post(n)

    DBOS.launch()
    DBOS.register_queue(QUEUE, worker_concurrency=concurrency, polling_interval_sec=0.05)
    print("READY 0", flush=True)
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    stop.wait()
    DBOS.destroy()  # the aiohttp session lives on DBOS's loop: it ends with the process


def _client(url: str) -> Any:
    from dbos import DBOSClient

    return DBOSClient(system_database_url=url)


def enqueue_many(url: str, n: int) -> None:
    client = _client(url)
    try:
        for i in range(n):
            client.enqueue({"queue_name": QUEUE, "workflow_name": WORKFLOW}, i)
    finally:
        client.destroy()


def enqueue_one(url: str, n: int) -> str:
    client = _client(url)
    try:
        handle = client.enqueue({"queue_name": QUEUE, "workflow_name": WORKFLOW}, n)
        return str(handle.get_workflow_id())
    finally:
        client.destroy()


def stats(url: str, ids: list[str] | None) -> dict[str, Any]:
    """Succeeded workflows; the first step's start and the last completion (ms); for ``ids``,
    each workflow's first step start minus its creation."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    schema = "" if url.startswith("sqlite") else "dbos."
    try:
        with engine.connect() as conn:
            where = ""
            if ids is not None:
                quoted = ",".join("'" + i.replace("'", "") + "'" for i in ids)
                where = f" AND w.workflow_uuid IN ({quoted})"
            row = conn.execute(
                sa.text(
                    f"SELECT count(*), min(o.started_at_epoch_ms), max(w.updated_at) "
                    f"FROM {schema}workflow_status w JOIN {schema}operation_outputs o "
                    f"ON o.workflow_uuid = w.workflow_uuid AND o.function_id = 1 "
                    f"WHERE w.status = 'SUCCESS'{where}"
                )
            ).one()
            delays: list[float] = []
            if ids is not None:
                delays = [
                    float(r[0])
                    for r in conn.execute(
                        sa.text(
                            f"SELECT o.started_at_epoch_ms - w.created_at "
                            f"FROM {schema}workflow_status w JOIN {schema}operation_outputs o "
                            f"ON o.workflow_uuid = w.workflow_uuid AND o.function_id = 1 "
                            f"WHERE 1=1{where}"
                        )
                    )
                ]
    finally:
        engine.dispose()
    return {
        "succeeded": int(row[0] or 0),
        "first_ms": int(row[1] or 0),
        "last_ms": int(row[2] or 0),
        "delays_ms": delays,
        "at": time.time(),
    }
