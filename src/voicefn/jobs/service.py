"""The worker ``voicefn serve`` runs: every workspace's jobs through that workspace's Executor
(its egress policy), tasks given the platform (``ctx.services["platform"]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .retry import RetryPolicy
from .settings import JobSettings
from .worker import JobWorker

if TYPE_CHECKING:
    from ..executor import Executor
    from ..server.platform import Platform


async def start_platform_worker(platform: Platform, settings: JobSettings) -> JobWorker | None:
    """Start the worker of one server process (None when ``settings.concurrency`` is 0)."""
    if settings.concurrency <= 0:
        return None
    from ..store.records import Workspace
    from ..store.sql import SqlStore

    store = platform.store
    assert isinstance(store, SqlStore)

    async def executor_for(workspace_id: str) -> Executor:
        policy = await platform.catalog.policy(Workspace(workspace_id, ""))
        return platform.executors.get(policy)

    worker = JobWorker(
        store,
        executor_for=executor_for,
        policy=RetryPolicy(
            max_attempts=settings.max_attempts,
            base_delay_s=settings.base_delay_s,
            max_delay_s=settings.max_delay_s,
        ),
        concurrency=settings.concurrency,
        lease_s=settings.lease_s,
        poll_s=settings.poll_s,
        services={"platform": platform},
    )
    await worker.start()
    return worker
