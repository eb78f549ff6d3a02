"""Workers: claim due jobs, deliver them, record each attempt. (Implementation follows.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .retry import RetryPolicy

if TYPE_CHECKING:
    from ..executor import Executor
    from ..store.sql import SqlStore


class JobWorker:
    """Delivers the jobs of every workspace in ``store``'s database.

    ``executor_for(workspace_id)`` gives the Executor a workspace's jobs run through (its egress
    policy); ``services`` are handed to tasks. At most ``concurrency`` deliveries at once; a
    claim holds a job for ``lease_s`` (renewed while it runs); with nothing due, the worker waits
    for a commit of new jobs (this process; PostgreSQL ``NOTIFY`` from others) or ``poll_s``.
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        executor_for: Callable[[str], Awaitable[Executor]],
        policy: RetryPolicy | None = None,
        concurrency: int = 64,
        lease_s: float = 30.0,
        poll_s: float = 0.5,
        services: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.executor_for = executor_for
        self.policy = policy or RetryPolicy()
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.services = dict(services or {})

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError
