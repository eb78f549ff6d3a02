"""Post-call delivery: jobs/s delivered by two worker processes, and hang-up -> first attempt.

    python benchmarks/post_call_delivery.py [--backend sqlite|postgresql|both] [--jobs N]
        [--latency-jobs M] [--rate R] [--workers 2] [--engine voicefn|dbos|both] [--json]

For each database: a workspace, ``--jobs`` signed HttpJobs enqueued (500 per transaction) to a
fast loopback receiver (``_loopback_server.py``, its own process), then ``--workers`` worker
processes (each a :class:`voicefn.jobs.JobWorker`, as ``voicefn serve`` runs it) started to drain
them: **jobs/s** is the jobs divided by the time from the first attempt's start to the last
outcome recorded (both read from the jobs tables). Then, with the workers idle, **hang-up -> first
attempt**: ``--latency-jobs`` jobs enqueued one per transaction (one per hang-up) at ``--rate``
per second from this process (not the workers'), each delay the first attempt's start minus the
job's enqueue time (p50, p99).

PostgreSQL: ``$VOICEFN_TEST_POSTGRES`` (default postgresql://postgres@127.0.0.1:5432/test), a
fresh database per run, dropped after. ``--engine dbos`` runs the same two measures on DBOS
Transact 3 (a queue and a one-step workflow doing the same signed POST, its system database on the
same backend), for the comparison in the README; it needs ``pip install dbos`` (not a voicefn
dependency) and, for PostgreSQL, ``psycopg``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import LoopbackServer, emit, environment, environment_line, percentile

ADMIN_URL = os.environ.get("VOICEFN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# ------------------------------------------------------------------------------ databases


async def _admin(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Database:
    """A fresh database for one run: a SQLite file, or a PostgreSQL database dropped after."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        if backend == "sqlite":
            self.url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            self.name = ""
        else:
            from urllib.parse import urlsplit

            self.name = f"voicefn_bench_{secrets.token_hex(4)}"
            asyncio.run(_admin(f'CREATE DATABASE "{self.name}"'))
            parts = urlsplit(ADMIN_URL)
            path = f"/{self.name}"
            self.url = parts._replace(scheme="postgresql+asyncpg", path=path).geturl()

    def drop(self) -> None:
        if self.name:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


# ------------------------------------------------------------------------------ workers


def worker_main(url: str, data_dir: str, concurrency: int) -> None:
    """A worker process: a JobWorker on ``url`` until stdin closes."""

    async def run() -> None:
        from voicefn.executor import Executor
        from voicefn.jobs import JobWorker
        from voicefn.store import SecretBox, open_store

        store = await open_store(url, SecretBox.load(Path(data_dir)), migrate=False)
        executor = Executor(allow_private_network=True)

        async def executor_for(_: str) -> Executor:
            return executor

        worker = JobWorker(store, executor_for=executor_for, concurrency=concurrency)
        await worker.start()
        print("READY 0", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes it
        await worker.stop()
        await executor.aclose()
        await store.close()

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


class WorkerProcess:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("READY"):
            self.close()
            raise RuntimeError(f"a worker did not start (said {line!r})")

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------ voicefn


async def _voicefn(
    url: str, data_dir: Path, receiver: str, args: argparse.Namespace
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from voicefn.jobs import HttpJob
    from voicefn.store import SecretBox, open_store
    from voicefn.store.models_jobs import JobAttemptRow, JobRow

    store = await open_store(url, SecretBox.load(data_dir))
    async with store.write() as repos:
        ws = await repos.workspaces.create("bench")
        await repos.signing_keys.create(ws, secret=SECRET)
    record = {
        "call_id": "CA0",
        "status": "completed",
        "transcript": [{"role": "agent", "text": "Bye!"}],
    }
    for start in range(0, args.jobs, 500):
        async with store.write() as repos:
            jobs = [
                HttpJob(receiver, {**record, "n": n}, name="agent_webhook")
                for n in range(start, min(args.jobs, start + 500))
            ]
            await repos.jobs.enqueue(ws, f"CA{start}", jobs)

    async def done() -> int:
        async with store.db.read() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(JobRow).where(JobRow.state == "succeeded")
                )
                or 0
            )

    argv = [
        sys.executable, __file__, "--worker", url, str(data_dir), str(args.concurrency),
    ]  # fmt: skip
    workers = [WorkerProcess(argv) for _ in range(args.workers)]
    try:
        deadline = time.monotonic() + args.max_seconds
        await _until(done, args.jobs, deadline)
        async with store.db.read() as session:
            first = await session.scalar(select(func.min(JobAttemptRow.started_us)))
            last = await session.scalar(select(func.max(JobRow.finished_us)))
            delivered = await done()
        seconds = ((last or 0) - (first or 0)) / 1e6
        # hang-up -> first attempt: one job per transaction, from this process
        ids: list[str] = []
        gap = 1 / args.rate
        t0 = time.perf_counter()
        for n in range(args.latency_jobs):
            async with store.write() as repos:
                ids += await repos.jobs.enqueue(
                    ws, f"L{n}", [HttpJob(receiver, {**record, "n": n}, name="agent_webhook")]
                )
            await asyncio.sleep(max(0.0, t0 + (n + 1) * gap - time.perf_counter()))
        target = args.jobs + args.latency_jobs
        await _until(done, target, deadline + 60)
        async with store.db.read() as session:
            rows = (
                await session.execute(
                    select(JobAttemptRow.started_us - JobRow.created_us)
                    .join(
                        JobRow,
                        (JobRow.workspace_id == JobAttemptRow.workspace_id)
                        & (JobRow.id == JobAttemptRow.job_id),
                    )
                    .where(JobAttemptRow.n == 1, JobRow.id.in_(ids))
                )
            ).scalars()
            delays = sorted(r / 1000 for r in rows)
    finally:
        for w in workers:
            w.close()
        await store.close()
    return {
        "jobs": args.jobs,
        "delivered": delivered,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(delivered / seconds, 1) if seconds else None,
        "first_attempt_ms": _delays(delays),
    }


async def _until(count: Callable[[], Awaitable[int]], target: int, deadline: float) -> None:
    """Poll the database until ``count()`` reaches ``target`` (or the deadline passes)."""
    while time.monotonic() < deadline:
        if await count() >= target:
            return
        await asyncio.sleep(0.1)


def _delays(delays: list[float]) -> dict[str, Any]:
    if not delays:
        return {"n": 0}
    return {
        "n": len(delays),
        "p50": round(percentile(delays, 50), 1),
        "p99": round(percentile(delays, 99), 1),
        "max": round(delays[-1], 1),
    }


# ------------------------------------------------------------------------------ DBOS


def dbos_worker_main(url: str, receiver: str, concurrency: int) -> None:
    """A DBOS process: the queue, the workflow, launched; it runs queued workflows until stdin
    closes."""
    from _dbos_app import run_worker

    run_worker(url, receiver, concurrency)


async def _dbos(url: str, receiver: str, args: argparse.Namespace) -> dict[str, Any]:
    from _dbos_app import enqueue_many, enqueue_one, stats

    sync_url = url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
    argv = [sys.executable, __file__, "--dbos-worker", sync_url, receiver, str(args.concurrency)]
    WorkerProcess(argv).close()  # DBOS makes its system database on its first launch
    t_enq = time.perf_counter()
    await asyncio.to_thread(enqueue_many, sync_url, args.jobs)  # a backlog, as for voicefn
    enqueue_s = time.perf_counter() - t_enq
    workers = [WorkerProcess(argv) for _ in range(args.workers)]
    try:
        deadline = time.monotonic() + args.max_seconds
        while True:
            s = await asyncio.to_thread(stats, sync_url, None)
            if s["succeeded"] >= args.jobs or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        seconds = (s["last_ms"] - s["first_ms"]) / 1000
        delivered = s["succeeded"]
        gap = 1 / args.rate
        t0 = time.perf_counter()
        ids: list[str] = []
        for n in range(args.latency_jobs):
            ids.append(await asyncio.to_thread(enqueue_one, sync_url, n))
            await asyncio.sleep(max(0.0, t0 + (n + 1) * gap - time.perf_counter()))
        while True:
            s2 = await asyncio.to_thread(stats, sync_url, ids)
            if s2["succeeded"] >= len(ids) or time.monotonic() > deadline + 60:
                break
            await asyncio.sleep(0.2)
        delays = sorted(s2["delays_ms"])
    finally:
        for w in workers:
            w.close()
    return {
        "jobs": args.jobs,
        "delivered": delivered,
        "enqueue_s": round(enqueue_s, 2),
        "seconds": round(seconds, 3),
        "jobs_per_s": round(delivered / seconds, 1) if seconds else None,
        "first_attempt_ms": _delays(delays),
    }


# ------------------------------------------------------------------------------ main


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import voicefn

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    engines = ["voicefn", "dbos"] if args.engine == "both" else [args.engine]
    results: dict[str, Any] = {}
    with LoopbackServer(args.max_seconds * 4) as server:
        receiver = f"http://127.0.0.1:{server.port}/hook"
        for backend in backends:
            for engine in engines:
                with tempfile.TemporaryDirectory() as tmp:
                    db = Database(backend, Path(tmp))
                    try:
                        if engine == "voicefn":
                            os.environ.setdefault("VOICEFN_SECRET_KEY", secrets.token_hex(16))
                            run = _voicefn(db.url, Path(tmp), receiver, args)
                        else:
                            run = _dbos(db.url, receiver, args)
                        results[f"{engine}/{backend}"] = asyncio.run(run)
                    finally:
                        db.drop()
    versions: dict[str, Any] = {"voicefn": voicefn.__version__}
    if "dbos" in engines:
        import importlib.metadata

        versions["dbos"] = importlib.metadata.version("dbos")
    return {
        "environment": environment(**versions),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "results": results,
    }


def print_table(data: dict[str, Any]) -> None:
    env = data["environment"]
    print(f"post-call delivery: {data['workers']} worker processes x {data['concurrency']} "
          f"deliveries; hang-ups at {data['rate']:g}/s")  # fmt: skip
    print(environment_line(env, *(k for k in ("voicefn", "dbos") if k in env)))
    print(f"{'engine/database':<22}{'jobs':>8}{'jobs/s':>10}{'first p50 ms':>14}{'p99 ms':>9}")
    for name, r in data["results"].items():
        fa = r["first_attempt_ms"]
        print(
            f"{name:<22}{r['delivered']:>8}{r['jobs_per_s'] or 0:>10.0f}"
            f"{fa.get('p50', float('nan')):>14.1f}{fa.get('p99', float('nan')):>9.1f}"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--dbos-worker":
        dbos_worker_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--engine", choices=["voicefn", "dbos", "both"], default="voicefn")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="hang-ups per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    emit(measure(args), args.json, print_table)


if __name__ == "__main__":
    main()
