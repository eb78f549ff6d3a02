"""The post-call work of one finished call, run inline (in this process, now).

:meth:`CallSession.finish() <voicefn.runtime.session.CallSession.finish>` and the voice-framework
adapters (LiveKit, Pipecat) run the same steps through :func:`run_post_call`: extract the agent's
post-call variables (one LLM request), run each post-call function with its mapping, then send
the execution record to the agent webhook, signed per Standard Webhooks when a ``whsec_`` secret
is given. Each step runs once; a failure is reported (an :class:`ErrorEvent`, a failed
:class:`FunctionFinished`) and never raised; the last event is :class:`PostCallFinished`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..context import CallContext
from ..webhooks import SECRET_PREFIX
from .events import (
    ErrorEvent,
    Event,
    ExecutionTimings,
    FunctionFinished,
    FunctionStarted,
    PostCallFinished,
)
from .postcall import (
    Delivery,
    Extraction,
    FinishedCall,
    PostCallReport,
    deliver_record,
    extract,
    outcome_of,
    record_for,
    resolve,
    run_post_call_function,
    wants_extraction,
)

if TYPE_CHECKING:
    from ..executor import Executor
    from .agent import Agent
    from .llm_client import LLMClient

#: The environment variable ``voicefn call`` reads the agent webhook's signing secret from.
SECRET_ENV = "VOICEFN_WEBHOOK_SECRET"

SigningSecret = str | Sequence[str]


def check_signing_secret(secret: SigningSecret | None, *, where: str = "signing_secret") -> None:
    """Raise ``ValueError`` unless ``secret`` is None or Standard Webhooks secrets
    (``whsec_<base64>``). The message names ``where`` and never shows the value."""
    if secret is None:
        return
    values = [secret] if isinstance(secret, str) else list(secret)
    if not values:
        raise ValueError(f"{where}: no secret given (pass None to send unsigned)")
    for i, value in enumerate(values):
        at = where if isinstance(secret, str) else f"{where}[{i}]"
        fix = (
            "use a secret such as voicefn.webhooks.new_secret() makes, or a signing key's "
            "secret from POST /v1/signing-keys"
        )
        if not isinstance(value, str) or not value.startswith(SECRET_PREFIX):
            raise ValueError(f"{at}: a signing secret starts with {SECRET_PREFIX!r}; {fix}")
        try:
            key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise ValueError(f"{at}: the part after {SECRET_PREFIX!r} is not base64; {fix}")


def finished_call(
    context: CallContext,
    *,
    agent_name: str,
    language: str,
    started_at: float,
    ended_at: float | None,
    ended_by: str,
    transfer_number: str | None,
    transcript: list[dict[str, str]],
    executions: Iterable[Mapping[str, Any]],
) -> FinishedCall:
    """A call as post-call work sees it, from the context it ended with (ids, numbers,
    variables, webhook) and what its host saw (times, how it ended, turns, executions)."""
    return FinishedCall(
        execution_id=context.execution_id,
        agent_id=context.agent_id or agent_name,
        call_sid=context.call_sid,
        from_number=context.from_number,
        to_number=context.to_number,
        language=language,
        started_at=started_at,
        ended_at=ended_at or time.time(),
        ended_by=ended_by,
        transfer_number=transfer_number,
        variables=dict(context.variables),
        transcript=transcript,
        executions=[dict(e) for e in executions if e.get("phase") != "post_call"],
        workspace_id=context.workspace_id,
        webhook_url=context.webhook_url,
    )


def webhook_key(call: FinishedCall) -> str:
    """The agent webhook's ``Idempotency-Key`` (and ``webhook-id``): stable for the call."""
    return f"{call.call_id}:post_call:webhook"


async def run_post_call(
    agent: Agent,
    call: FinishedCall,
    executor: Executor,
    llm: LLMClient,
    *,
    signing_secret: SigningSecret | None = None,
) -> AsyncIterator[Event]:
    """Run ``call``'s post-call work, yielding what happens (see the module's docstring)."""
    extraction: Extraction | None = None
    if wants_extraction(agent):
        extraction = await extract(agent, call, llm)
        if extraction.error:
            yield ErrorEvent("the post-call extraction failed", extraction.error)
    outcomes: list[dict[str, Any]] = []
    for function in agent.functions:
        if function.phase != "post_call":
            continue
        call_id = f"post_call_{function.name}"
        started = time.perf_counter()
        resolved = resolve(function, call, extraction or Extraction())
        shown = {k: resolved.arguments[k] for k in function.mapping if k in resolved.arguments}
        yield FunctionStarted(function.name, call_id, shown)
        result = await run_post_call_function(
            executor, function, call, extraction or Extraction(), resolved
        )
        latency = (time.perf_counter() - started) * 1000
        timings = ExecutionTimings(
            None, result.timings.time_to_request_ms, result.timings.request_ms
        )
        outcomes.append(outcome_of(result, latency))
        yield FunctionFinished(function.name, call_id, result, latency, timings)
    record = record_for(agent, call, extraction, outcomes)
    delivery: Delivery | None = None
    if call.webhook_url:
        delivery = await deliver_record(
            executor, call.webhook_url, record, key=webhook_key(call), signing=signing_secret
        )
        if not delivery.ok:
            yield ErrorEvent("the agent webhook failed", f"{call.webhook_url}: {delivery.error}")
    yield PostCallFinished(PostCallReport(call, extraction, outcomes, record, delivery))


async def post_call(
    agent: Agent,
    call: FinishedCall,
    executor: Executor,
    llm: LLMClient,
    *,
    signing_secret: SigningSecret | None = None,
) -> PostCallReport:
    """:func:`run_post_call` to its end: the report."""
    report: PostCallReport | None = None
    async for event in run_post_call(agent, call, executor, llm, signing_secret=signing_secret):
        if isinstance(event, PostCallFinished):
            report = event.report
    assert report is not None  # the runner always ends with PostCallFinished
    return report
