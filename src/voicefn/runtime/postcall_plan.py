"""The durable post-call work (``voicefn serve``): which jobs a finished call needs
(:class:`PostCallPlan`), and, after the extraction, everything each of them runs with
(:func:`expand`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..context import CallContext
from ..spec import Function
from .postcall_call import FinishedCall
from .postcall_delivery import record_for
from .postcall_extract import Extraction
from .postcall_mapping import resolve

if TYPE_CHECKING:
    from .agent import Agent


JobKind = Literal["extract", "function", "webhook"]


@dataclass(frozen=True)
class PlannedJob:
    """One unit of post-call work. ``key`` is stable for the call (an idempotency key: the
    same call planned twice gives the same keys); ``after`` names the jobs whose outcome it
    needs."""

    key: str
    kind: JobKind
    function: str | None = None
    after: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "function": self.function,
            "after": list(self.after),
        }


@dataclass(frozen=True)
class PostCallPlan:
    """The post-call work a finished call needs, as job descriptions, in order: the
    extraction (always first: it also resolves the mappings), one job per post-call function,
    and the agent webhook (when the agent has a webhook URL).

    The platform persists the plan's first job with the call, in one transaction; running it
    gives the extraction (:func:`extract`) and, through :func:`expand`, the other jobs with
    everything they run with, under the keys planned here."""

    call_id: str
    jobs: tuple[PlannedJob, ...]

    @classmethod
    def build(cls, agent: Agent, call: FinishedCall, *, prefix: str | None = None) -> PostCallPlan:
        """The jobs of ``call``; their keys start with ``prefix`` (default: the call's id; the
        platform uses its own call record's id, unique in the workspace)."""
        base = f"{prefix or call.call_id}:post_call"
        extract_key = f"{base}:extract"
        jobs = [PlannedJob(extract_key, "extract")]
        for function in agent.functions:
            if function.phase == "post_call":
                jobs.append(
                    PlannedJob(
                        f"{base}:function:{function.name}",
                        "function",
                        function.name,
                        (extract_key,),
                    )
                )
        if call.webhook_url:
            jobs.append(PlannedJob(f"{base}:webhook", "webhook", None, (extract_key,)))
        return cls(call.call_id, tuple(jobs))

    def job(self, kind: JobKind, function: str | None = None) -> PlannedJob | None:
        return next((j for j in self.jobs if j.kind == kind and j.function == function), None)

    def to_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "jobs": [j.to_dict() for j in self.jobs]}


@dataclass(frozen=True)
class FunctionWork:
    """A post-call function job, resolved: run ``function`` with ``arguments`` in ``context``
    (``missing``: not run, and why)."""

    key: str
    function: Function
    arguments: dict[str, Any]
    context: CallContext
    missing: list[tuple[str, str, str]]


@dataclass(frozen=True)
class WebhookWork:
    key: str
    url: str
    record: dict[str, Any]


def expand(
    agent: Agent,
    call: FinishedCall,
    extraction: Extraction,
    plan: PostCallPlan | None = None,
    *,
    mask: Sequence[str] = (),
) -> tuple[list[FunctionWork], WebhookWork | None]:
    """After the extraction: every post-call function job with its resolved arguments, and the
    webhook job with the record (post-call functions listed as queued)."""
    plan = plan or PostCallPlan.build(agent, call)
    functions: list[FunctionWork] = []
    for function in agent.functions:
        planned = plan.job("function", function.name)
        if function.phase != "post_call" or planned is None:
            continue
        r = resolve(function, call, extraction)
        functions.append(FunctionWork(planned.key, function, r.arguments, r.context, r.missing))
    hook = plan.job("webhook")
    webhook = None
    if hook is not None and call.webhook_url:
        queued = [
            {"function": w.function.name, "state": "skipped" if w.missing else "queued"}
            for w in functions
        ]
        webhook = WebhookWork(
            hook.key, call.webhook_url, record_for(agent, call, extraction, queued, mask=mask)
        )
    return functions, webhook
