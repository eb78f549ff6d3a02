"""The extraction: one request to the agent's LLM (structured output) for the post-call variables
and the extras (summary, outcome), asked in the best JSON mode the endpoint accepts."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .postcall_answer import FieldResult, check_value, parse_answer
from .postcall_call import FinishedCall
from .postcall_spec import OUTCOMES, PostCallVariable, extras_of

if TYPE_CHECKING:
    from .agent import Agent
    from .llm_client import LLMClient

log = logging.getLogger("voicefn.postcall")

#: How the extraction asks for JSON, from the best to the most widely supported.
MODES: tuple[str, ...] = ("json_schema", "json_object", "text")
#: Statuses with which an endpoint refuses a request shape (a ``response_format`` it lacks).
_REFUSED = frozenset({400, 415, 422, 501})
#: What each ``(endpoint, model)`` accepted last: later calls start there.
_accepted: dict[tuple[str, str], str] = {}


@dataclass
class Extraction:
    """What the extraction gave: ``values`` (only valid ones; what ``post_call.*`` reads) and
    every field's status. ``ok``: the LLM answered and every required variable is valid."""

    fields: dict[str, FieldResult] = field(default_factory=dict)
    ok: bool = True
    error: str | None = None
    #: Why no request was made (nothing to extract, the caller said nothing).
    skipped: str | None = None
    #: One entry per LLM request: mode, outcome (ok, malformed, refused, failed), detail.
    requests: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: float = 0.0

    @property
    def values(self) -> dict[str, Any]:
        return {k: f.value for k, f in self.fields.items() if f.status == "ok"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "skipped": self.skipped,
            "values": self.values,
            "fields": {k: f.to_dict() for k, f in self.fields.items()},
            "requests": list(self.requests),
            "latency_ms": round(self.latency_ms, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Extraction:
        fields = {
            str(k): FieldResult(
                v.get("status", "missing"), v.get("value"), v.get("found"), v.get("reason")
            )
            for k, v in (data.get("fields") or {}).items()
            if isinstance(v, Mapping)
        }
        return cls(
            fields,
            bool(data.get("ok", True)),
            data.get("error"),
            data.get("skipped"),
            list(data.get("requests") or []),
            float(data.get("latency_ms") or 0.0),
        )


def wants_extraction(agent: Agent) -> bool:
    return bool(agent.post_call_variables) or bool(extras_of(agent.post_call))


def _extra_specs(agent: Agent) -> list[PostCallVariable]:
    out: list[PostCallVariable] = []
    if agent.post_call.summary:
        out.append(
            PostCallVariable(
                name="summary",
                description="A short summary of the call in two or three sentences: who "
                "called, what they wanted, what was done.",
            )
        )
    if agent.post_call.outcome:
        out.append(
            PostCallVariable(
                name="outcome",
                type="enum",
                values=list(OUTCOMES),
                description="success: the call achieved what the caller or agent set out to "
                "do; failed: it did not; transferred: the call was handed to a person; "
                "no-answer: nobody answered or the caller never spoke.",
            )
        )
        out.append(
            PostCallVariable(
                name="outcome_reason", description="One sentence: why that is the outcome."
            )
        )
    return out


def extraction_schema(agent: Agent) -> dict[str, Any]:
    """The JSON Schema the LLM answers with: every value nullable (null: the transcript does
    not say), every key required, nothing else (what OpenAI's strict mode asks)."""
    specs = [*agent.post_call_variables, *_extra_specs(agent)]
    return {
        "type": "object",
        "properties": {v.name: v.json_schema() for v in specs},
        "required": [v.name for v in specs],
        "additionalProperties": False,
    }


_SYSTEM = (
    "You read the transcript of a finished phone call between a voice agent and a caller, and "
    "extract the values listed below. Answer with one JSON object and nothing else: one key per "
    "value. Use null for a value the transcript does not state; never guess or invent one. "
    "Follow each value's type exactly."
)


def _describe(spec: PostCallVariable) -> str:
    kind = {
        "enum": "one of " + ", ".join(json.dumps(v) for v in spec.values),
        "list": f"a list of {spec.items}s",
    }.get(spec.type, spec.type)
    required = " (required)" if spec.required else ""
    return f"- {spec.name}: {kind}{required}. {spec.description}".rstrip(". ") + "."


def extraction_messages(agent: Agent, call: FinishedCall) -> list[dict[str, Any]]:
    specs = [*agent.post_call_variables, *_extra_specs(agent)]
    listed = "\n".join(_describe(s) for s in specs)
    facts = [f"ended by: {call.ended_by}", f"duration: {call.duration_s:g} s"]
    if call.transfer_number:
        facts.append(f"transferred to: {call.transfer_number}")
    lines = "\n".join(f"{t.get('role', '?')}: {t.get('text', '')}" for t in call.transcript)
    return [
        {"role": "system", "content": f"{_SYSTEM}\n\nValues:\n{listed}"},
        {
            "role": "user",
            "content": f"Call facts: {'; '.join(facts)}.\n\nTranscript:\n{lines}",
        },
    ]


def _options(mode: str, schema: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"temperature": 0}
    if mode == "json_schema":
        options["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "post_call_variables", "strict": True, "schema": schema},
        }
    elif mode == "json_object":
        options["response_format"] = {"type": "json_object"}
    return options


def check_answer(agent: Agent, answer: dict[str, Any] | None) -> dict[str, FieldResult]:
    specs = [*agent.post_call_variables, *_extra_specs(agent)]
    if answer is None:
        return {
            s.name: FieldResult("missing", reason="the LLM gave no usable answer") for s in specs
        }
    return {s.name: check_value(s, answer.get(s.name)) for s in specs}


def _finish(agent: Agent, call: FinishedCall, ex: Extraction) -> Extraction:
    """The call's facts decide ``transferred`` and ``no-answer``; ``ok`` is computed."""
    if agent.post_call.outcome:
        fact: str | None = None
        reason: str | None = None
        if call.transfer_number or call.ended_by == "transfer":
            fact, reason = "transferred", f"the call was transferred to {call.transfer_number}"
        elif not call.caller_spoke():
            fact, reason = "no-answer", "the caller never spoke"
        if fact is not None:
            ex.fields["outcome"] = FieldResult("ok", fact)
            if ex.fields.get("outcome_reason", FieldResult("missing")).status != "ok":
                ex.fields["outcome_reason"] = FieldResult("ok", reason)
    required = [v.name for v in agent.post_call_variables if v.required]
    ex.ok = ex.error is None and all(
        ex.fields.get(n, FieldResult("missing")).status == "ok" for n in required
    )
    return ex


async def extract(agent: Agent, call: FinishedCall, llm: LLMClient) -> Extraction:
    """One request to the agent's LLM (structured output) for the post-call variables and the
    extras; never raises. Endpoints that refuse ``json_schema`` are asked again with
    ``json_object``, then with the schema in the prompt only, and what each endpoint accepted
    is remembered. A malformed answer (not JSON, a value of the wrong type) is sent back once
    with what was wrong; what is still wrong after that is recorded as invalid or missing."""
    started = time.perf_counter()
    ex = Extraction()
    if not wants_extraction(agent):
        ex.skipped = "the agent declares no post-call variables"
        return ex
    if not call.caller_spoke():
        ex.fields = {
            s.name: FieldResult("missing", reason="the caller never spoke")
            for s in [*agent.post_call_variables, *_extra_specs(agent)]
        }
        ex.skipped = "the caller never spoke"
        return _finish(agent, call, ex)
    try:
        model = agent.llm.resolved_model()
    except ValueError as exc:
        ex.error = str(exc)
        ex.fields = check_answer(agent, None)
        return _finish(agent, call, ex)
    schema = extraction_schema(agent)
    messages = extraction_messages(agent, call)
    remembered = _accepted.get((llm.endpoint, model), MODES[0])
    modes = MODES[MODES.index(remembered) :]
    try:
        await _ask_in_modes(agent, llm, model, schema, messages, modes, ex)
    except Exception as exc:  # a bug of ours: reported, the call's other work goes on
        log.exception("post-call extraction failed")
        ex.error = f"the extraction failed: {type(exc).__name__}: {exc}"
        ex.fields = ex.fields or check_answer(agent, None)
    ex.latency_ms = (time.perf_counter() - started) * 1000
    return _finish(agent, call, ex)


async def _ask_in_modes(
    agent: Agent,
    llm: LLMClient,
    model: str,
    schema: dict[str, Any],
    messages: list[dict[str, Any]],
    modes: Sequence[str],
    ex: Extraction,
) -> None:
    from .llm_client import LLMError, LLMStatusError

    for mode in modes:
        try:
            text = await _ask(llm, model, messages, mode, schema, ex)
        except LLMStatusError as exc:
            if exc.status in _REFUSED and mode != MODES[-1]:
                ex.requests[-1].update(outcome="refused", detail=str(exc))
                continue
            ex.requests[-1].update(outcome="failed", detail=str(exc))
            ex.error = str(exc)
            ex.fields = check_answer(agent, None)
            return
        except LLMError as exc:
            ex.requests[-1].update(outcome="failed", detail=str(exc))
            ex.error = str(exc)
            ex.fields = check_answer(agent, None)
            return
        _accepted[(llm.endpoint, model)] = mode
        answer = parse_answer(text)
        fields = check_answer(agent, answer)
        wrong = _what_is_wrong(answer, fields)
        if wrong is None:
            ex.requests[-1]["outcome"] = "ok"
            ex.fields = fields
            return
        ex.requests[-1]["outcome"] = "malformed"
        ex.requests[-1]["detail"] = wrong
        again = [
            *messages,
            {"role": "assistant", "content": text},
            {
                "role": "user",
                "content": f"That answer cannot be used: {wrong}. Answer again with only the "
                "JSON object, one key per value, null where the transcript does not say.",
            },
        ]
        try:
            text = await _ask(llm, model, again, mode, schema, ex)
        except LLMError as exc:
            ex.requests[-1]["outcome"] = "failed"
            ex.requests[-1]["detail"] = str(exc)
            ex.fields = fields  # what the first answer gave that was valid stays
            return
        second = parse_answer(text)
        retried = check_answer(agent, second)
        still = _what_is_wrong(second, retried)
        ex.requests[-1]["outcome"] = "ok" if still is None else "malformed"
        if still is not None:
            ex.requests[-1]["detail"] = still
        # Per value: the second answer's valid one, else the first's, else what was wrong.
        ex.fields = {
            name: result if result.status == "ok" or fields[name].status != "ok" else fields[name]
            for name, result in retried.items()
        }
        if second is None and answer is None:
            ex.error = "the LLM's answers were not JSON objects"
        return
    ex.error = "the endpoint refused every way of asking for JSON"
    ex.fields = check_answer(agent, None)


async def _ask(
    llm: LLMClient,
    model: str,
    messages: list[dict[str, Any]],
    mode: str,
    schema: dict[str, Any],
    ex: Extraction,
) -> str:
    ex.requests.append({"mode": mode, "outcome": "sent"})
    completion = await llm.complete(model, messages, **_options(mode, schema))
    choices = completion.get("choices") if isinstance(completion, dict) else None
    message = choices[0].get("message") if isinstance(choices, list) and choices else None
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    if not content and isinstance(message.get("refusal"), str):
        return f"(refused: {message['refusal']})"
    return content if isinstance(content, str) else ""


def _what_is_wrong(answer: dict[str, Any] | None, fields: Mapping[str, FieldResult]) -> str | None:
    if answer is None:
        return "it is not a JSON object"
    bad = [f"{name} {f.reason}" for name, f in fields.items() if f.status == "invalid"]
    return "; ".join(bad) if bad else None
