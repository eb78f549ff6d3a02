"""What ``voicefn serve`` runs: a worker for every workspace's jobs, through that workspace's
Executor (its egress policy), tasks given the platform (``ctx.services["platform"]``); and the
signing of pre-call webhooks with the same keys."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .retry import RetryPolicy
from .settings import JobSettings
from .worker import JobWorker, SigningCache

if TYPE_CHECKING:
    from ..context import CallContext
    from ..executor import Executor
    from ..server.platform import Platform

_caches: weakref.WeakKeyDictionary[Platform, SigningCache] = weakref.WeakKeyDictionary()


def signing_cache(platform: Platform) -> SigningCache:
    """The platform's one cache of signing secrets (jobs and pre-call webhooks share it)."""
    from ..store.sql import SqlStore

    cache = _caches.get(platform)
    if cache is None:
        store = platform.store
        assert isinstance(store, SqlStore)
        cache = _caches[platform] = SigningCache(store)
    return cache


def sign_precall_webhooks(executor: Executor, platform: Platform) -> None:
    """Sign the pre-call webhooks ``executor`` sends with the call's agent's (or workspace's)
    keys."""

    async def secrets(ctx: CallContext) -> Sequence[str]:
        if not ctx.workspace_id:
            return []
        return await signing_cache(platform).secrets(ctx.workspace_id, ctx.agent_id)

    executor.webhooks.signing = secrets


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
        signing=signing_cache(platform),
    )
    await worker.start()
    return worker
