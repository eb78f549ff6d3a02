"""What a job is: the three kinds callers enqueue, the records the queue hands back, and the
exceptions a task raises to steer its retries. Plain dataclasses; nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..context import CallContext
    from ..spec import Function

Kind = Literal["http", "function", "task"]
#: ``queued``: waiting for its next attempt (``due_at``); ``running``: a worker holds it (until
#: its lease ends); ``succeeded``; ``dead``: dead-letter (attempts used up, or a final answer).
State = Literal["queued", "running", "succeeded", "dead"]
STATES: tuple[str, ...] = ("queued", "running", "succeeded", "dead")
#: An attempt's outcome: delivered; failed and will be retried; failed for good.
Outcome = Literal["ok", "retry", "final"]


@dataclass(frozen=True, slots=True)
class HttpJob:
    """Deliver one HTTP request, signed per Standard Webhooks (the agent webhook's execution
    record, any other webhook).

    ``body`` is sent as JSON (``bytes`` as they are). ``headers`` whose names say they carry a
    credential (``Authorization``, ``X-Api-Key``, ...) are encrypted at rest. ``sign`` signs it
    with the agent's webhook signing key when ``agent_id`` has one, else the workspace's (made on
    first use). The request also carries ``Idempotency-Key: <job id>``, the same on every attempt.
    """

    url: str
    body: Any = None
    name: str = "webhook"
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    sign: bool = True
    agent_id: str | None = None
    timeout_s: float = 10.0
    #: Enqueueing a key the workspace already has is a no-op (so a retried enqueue is safe).
    key: str | None = None
    #: None: the queue's setting (``RetryPolicy.max_attempts``).
    max_attempts: int | None = None

    @property
    def kind(self) -> Kind:
        return "http"


@dataclass(frozen=True, slots=True)
class FunctionJob:
    """Run a voicefn :class:`~voicefn.spec.Function` (a post-call function) with ``arguments``
    in ``context``, through the workspace's Executor.

    An HTTP function's request carries ``Idempotency-Key: <job id>`` and, with ``sign=True``,
    Standard Webhooks signature headers; its answer decides the retry (2xx: done; 408, 425, 429,
    5xx, no answer: retry; other 4xx: final). Other kinds (JavaScript, Python, builtin) run through
    ``Executor.run`` with the key in the context variable ``idempotency_key``; a failed run is
    retried unless its arguments were refused. The function's secrets and the context's variables
    are encrypted at rest.
    """

    function: Function
    arguments: Mapping[str, Any]
    context: CallContext
    sign: bool = False
    name: str | None = None  #: default: the function's name
    key: str | None = None
    max_attempts: int | None = None

    @property
    def kind(self) -> Kind:
        return "function"


@dataclass(frozen=True, slots=True)
class TaskJob:
    """Run a coroutine registered by name (:func:`voicefn.jobs.task`), e.g. the post-call
    extraction. ``payload`` is stored as JSON; ``secret`` (JSON too) is encrypted at rest. Both
    are handed to the task in its :class:`~voicefn.jobs.TaskContext`."""

    task: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    secret: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None  #: default: the task's name
    key: str | None = None
    max_attempts: int | None = None

    @property
    def kind(self) -> Kind:
        return "task"


Job = HttpJob | FunctionJob | TaskJob


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One delivery attempt."""

    n: int
    started_us: int
    finished_us: int
    outcome: Outcome
    status: int | None  #: the HTTP status, when there was an answer
    error: str | None  #: why it failed, in a few words
    retry_after_s: float | None  #: what the receiver asked for (``Retry-After``)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored (secrets stay encrypted; ``payload`` is what can be shown)."""

    id: str
    workspace_id: str
    call_id: str | None
    kind: Kind
    name: str
    key: str | None
    state: State
    attempts: int
    #: None: the worker's setting (:attr:`RetryPolicy.max_attempts`)
    max_attempts: int | None
    #: attempts made before the last redelivery (not counted against ``max_attempts``)
    redelivered_at_attempt: int
    #: when a queued job is next tried (or when a running job's lease ends); None once finished
    due_us: int | None
    created_us: int
    updated_us: int
    first_attempt_us: int | None
    finished_us: int | None
    last_status: int | None
    last_error: str | None
    #: kind-specific and shown to the workspace: url/method/body, function/arguments, task/payload
    payload: dict[str, Any]
    result: Any
    attempt_log: tuple[AttemptRecord, ...] = ()

    @property
    def idempotency_key(self) -> str:
        """Sent as ``Idempotency-Key`` (and as ``webhook-id``): the job's id, on every attempt."""
        return self.id


class RetryLater(Exception):
    """Raised by a task: this attempt failed, try again (after ``after_s`` when given, else by
    the backoff)."""

    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after_s = after_s


class FinalFailure(Exception):
    """Raised by a task: this will never work; dead-letter the job now."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
