"""Tasks: coroutines registered by name that :class:`~voicefn.jobs.TaskJob` runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..executor import Executor
    from .model import Job

TaskFn = Callable[["TaskContext"], Awaitable[Any]]
F = TypeVar("F", bound=TaskFn)

_TASKS: dict[str, TaskFn] = {}


@dataclass(slots=True)
class TaskContext:
    """What a task gets: its job, the workspace's Executor, the worker's ``services`` (objects
    the host passes, such as an LLM client), and :meth:`enqueue` for follow-up jobs."""

    job_id: str
    workspace_id: str
    call_id: str | None
    #: this attempt's number (1 for the first)
    attempt: int
    payload: Mapping[str, Any]
    secret: Mapping[str, Any]
    executor: Executor
    services: Mapping[str, Any]
    follow_up: list[Job] = field(default_factory=list)

    @property
    def idempotency_key(self) -> str:
        return self.job_id

    def enqueue(self, jobs: list[Job]) -> None:
        """Jobs to create when this task succeeds, in the transaction that records its success
        (for the same call). Give each a ``key``: if the task runs again after a crash, jobs
        whose key exists are not created twice."""
        self.follow_up.extend(jobs)


def task(name: str) -> Callable[[F], F]:
    """Register ``async def fn(ctx: TaskContext) -> result`` as the task ``name``."""

    def register(fn: F) -> F:
        register_task(name, fn)
        return fn

    return register


def register_task(name: str, fn: TaskFn) -> None:
    existing = _TASKS.get(name)
    if existing is not None and existing is not fn:
        raise ValueError(f"a different task is already registered as {name!r}")
    _TASKS[name] = fn


def lookup(name: str) -> TaskFn | None:
    return _TASKS.get(name)


def registered() -> list[str]:
    return sorted(_TASKS)
