"""After the call: extraction, the mapping, each post-call function, the agent webhook.

The same code runs a finished call's post-call work in both places:

* **inline** (the library, ``voicefn call``): :meth:`CallSession.finish` runs the steps one after
  the other (:func:`extract`, :func:`run_post_call_function` for each post-call function,
  :func:`deliver_record` to the agent webhook); a failure is reported, never raised;
* **durably** (``voicefn serve``): :class:`PostCallPlan` says which jobs a finished call needs;
  the platform persists them with the call, in one transaction, and the job queue's workers run
  the same steps (:func:`expand` turns the extraction's outcome into the function and webhook
  jobs).

A finished call is a :class:`FinishedCall`: plain JSON data (``to_dict``/``from_dict``), so it
can be stored, queued, or reported by a host over HTTP.

In-call results into variables (``store:``) are here too: :func:`stored_values`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..context import CallContext
from ..results import ToolResult, error_content
from ..spec import Function, JavaScriptAction, PythonAction
from ..validation import CALL_SOURCES, mapping_entry
from .postcall_record import execution_record, iso
from .postcall_spec import OUTCOMES, PostCallVariable, extras_of

if TYPE_CHECKING:
    from ..executor import Executor
    from .agent import Agent
    from .llm_client import LLMClient

log = logging.getLogger("voicefn.postcall")

EndedBy = Literal["caller", "agent", "transfer", "system"]
ENDED_BY: tuple[str, ...] = ("caller", "agent", "transfer", "system")
FieldStatus = Literal["ok", "missing", "invalid"]
#: How the extraction asks for JSON, from the best to the most widely supported.
MODES: tuple[str, ...] = ("json_schema", "json_object", "text")
#: Statuses with which an endpoint refuses a request shape (a ``response_format`` it lacks).
_REFUSED = frozenset({400, 415, 422, 501})
#: What each ``(endpoint, model)`` accepted last: later calls start there.
_accepted: dict[tuple[str, str], str] = {}
WEBHOOK_TIMEOUT_S = 10.0
WEBHOOK_MAX_BODY = 64 * 1024


# ------------------------------------------------------------------------------ the call


@dataclass
class FinishedCall:
    """Everything post-call work needs to know about a call, as JSON-able data."""

    execution_id: str
    agent_id: str = "agent"
    call_sid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    language: str = "en"
    started_at: float = 0.0  #: UNIX seconds
    ended_at: float = 0.0
    ended_by: str = "caller"
    transfer_number: str | None = None
    #: The call's variables at its end: the agent's, the call's, what functions stored.
    variables: dict[str, Any] = field(default_factory=dict)
    #: ``[{"role": "caller" | "agent", "text": ...}]``
    transcript: list[dict[str, str]] = field(default_factory=list)
    #: Pre-call and in-call executions: function, phase, tool_call_id, arguments, ok, status,
    #: error, latency_ms, timings, deduplicated, stored, content (what the LLM read).
    executions: list[dict[str, Any]] = field(default_factory=list)
    workspace_id: str | None = None
    webhook_url: str | None = None

    @property
    def call_id(self) -> str:
        return self.call_sid or self.execution_id

    @property
    def duration_s(self) -> float:
        return round(max(0.0, self.ended_at - self.started_at), 3)

    def facts(self) -> dict[str, Any]:
        """``call.*``: what a mapping reads about the call."""
        out: dict[str, Any] = {
            "id": self.call_id,
            "call_sid": self.call_sid,
            "execution_id": self.execution_id,
            "agent_id": self.agent_id,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "language": self.language,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration_s": self.duration_s,
            "ended_by": self.ended_by,
            "transfer_number": self.transfer_number,
        }
        assert set(out) == set(CALL_SOURCES)  # the validator's list is this one
        return out

    def context(self, hide: Sequence[str] = ()) -> CallContext:
        """The context post-call functions run in; ``hide`` drops variables a mapping fills
        (the mapping wins over a variable of the same name)."""
        return CallContext(
            agent_id=self.agent_id,
            call_sid=self.call_sid,
            execution_id=self.execution_id,
            from_number=self.from_number,
            to_number=self.to_number,
            variables={k: v for k, v in self.variables.items() if k not in hide},
            webhook_url=self.webhook_url,
            workspace_id=self.workspace_id,
        )

    def caller_spoke(self) -> bool:
        return any(t.get("role") == "caller" and t.get("text") for t in self.transcript)

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "agent_id": self.agent_id,
            "call_sid": self.call_sid,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "language": self.language,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "transfer_number": self.transfer_number,
            "variables": dict(self.variables),
            "transcript": [dict(t) for t in self.transcript],
            "executions": [dict(e) for e in self.executions],
            "workspace_id": self.workspace_id,
            "webhook_url": self.webhook_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinishedCall:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


# ------------------------------------------------------------------------------ extraction


@dataclass
class FieldResult:
    """One extracted value: ``ok`` (``value``), ``missing``, or ``invalid`` (``found``)."""

    status: FieldStatus
    value: Any = None
    found: Any = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.status == "ok":
            out["value"] = self.value
        if self.status == "invalid":
            out["found"] = self.found
        if self.reason:
            out["reason"] = self.reason
        return out


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


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def parse_answer(text: str) -> dict[str, Any] | None:
    """The JSON object in an answer: the whole text, a fenced block, or the first object in
    the prose around it. None when there is none."""
    text = _THINK.sub("", text).strip()
    candidates = [text, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _scalar(kind: str, value: Any) -> tuple[bool, Any]:
    """(valid, value) for one value of ``kind``; the usual spellings of a value are accepted
    ("5" for 5, 5.0 for 5, "true" for true), nothing is made up."""
    if kind == "string":
        if isinstance(value, str):
            return True, value.strip()
        return False, value
    if kind == "boolean":
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return True, value.strip().lower() == "true"
        return False, value
    if isinstance(value, bool):
        return False, value
    if kind == "integer":
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            return True, int(value.strip())
        return False, value
    if isinstance(value, int):
        return True, value
    if isinstance(value, float):
        return math.isfinite(value), value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
        return True, int(number) if number.is_integer() and "." not in value else number
    return False, value


_A = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


def check_value(spec: PostCallVariable, value: Any) -> FieldResult:
    """One value of the LLM's answer against its declaration."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return FieldResult("missing", reason="the transcript does not say")
    if spec.type == "enum":
        if isinstance(value, str):
            wanted = value.strip()
            for allowed in spec.values:
                if wanted == allowed or wanted.lower() == allowed.lower():
                    return FieldResult("ok", allowed)
            if spec.name == "outcome" and wanted.lower().replace("_", "-") in (
                "no-answer",
                "no answer",
            ):
                return FieldResult("ok", "no-answer")
        return FieldResult("invalid", found=value, reason=f"not one of {', '.join(spec.values)}")
    if spec.type == "list":
        if not isinstance(value, list):
            return FieldResult("invalid", found=value, reason=f"not a list of {spec.items}s")
        items = []
        for item in value:
            valid, coerced = _scalar(spec.items, item)
            if not valid:
                return FieldResult(
                    "invalid", found=value, reason=f"{json.dumps(item)} is not {_A[spec.items]}"
                )
            items.append(coerced)
        return FieldResult("ok", items)
    valid, coerced = _scalar(spec.type, value)
    if not valid:
        return FieldResult("invalid", found=value, reason=f"not {_A[spec.type]}")
    return FieldResult("ok", coerced)


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


# ------------------------------------------------------------------------------ mapping


@dataclass
class Resolved:
    """A post-call function's values: what it runs with, what could not be filled."""

    arguments: dict[str, Any]
    context: CallContext
    #: ``(parameter, source, why)`` for required parameters left without a value
    missing: list[tuple[str, str, str]] = field(default_factory=list)


def _dig(value: Any, parts: Sequence[str]) -> tuple[bool, Any]:
    for part in parts:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def transcript_text(transcript: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"{t.get('role', '?')}: {t.get('text', '')}" for t in transcript)


def _lookup(
    source: str, call: FinishedCall, extraction: Extraction
) -> tuple[bool, Any, str | None]:
    """(found, value, why not) for a source."""
    parts = source.split(".")
    root, rest = parts[0], parts[1:]
    if root == "transcript":
        return True, call.transcript, None
    if root == "call":
        value = call.facts().get(rest[0])
        return value is not None, value, None if value is not None else f"the call has no {source}"
    if root == "variables":
        found, value = _dig(call.variables, rest)
        if not found or value is None:
            return False, None, f"the call has no variable {rest[0]}"
        return True, value, None
    if root == "post_call":
        name = rest[0]
        result = extraction.fields.get(name)
        if result is None:
            why = extraction.error or extraction.skipped or "it was not extracted"
            return False, None, f"{source}: {why}"
        if result.status != "ok":
            return (
                False,
                None,
                f"{source} is {result.status}" + (f" ({result.reason})" if result.reason else ""),
            )
        found, value = _dig(result.value, rest[1:])
        return found, value, None if found else f"{source} has no such part"
    return False, None, f"unknown source {source}"


def _fit(value: Any, schema: Any) -> Any:
    """A value shaped for its parameter: text for a string parameter, the transcript as text
    or a list of turns."""
    declared = schema.get("type") if isinstance(schema, dict) else None
    wanted = {declared} if isinstance(declared, str) else set(declared or ())
    turns = isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]
    if turns and "string" in wanted and "array" not in wanted:
        return transcript_text(value)
    if "string" in wanted and len(wanted - {"null"}) == 1:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
    return value


def resolve(function: Function, call: FinishedCall, extraction: Extraction) -> Resolved:
    """A post-call function's arguments and context.

    With a ``mapping``: each mapped parameter from its source (a missing value is left out, or
    takes the mapping's ``default``; a missing *required* one is listed in ``missing``: the
    function is then not run). Code functions also get the whole call data (``call``,
    ``post_call``, ``transcript``, ``executions``; ``variables`` come from the context), as
    without a mapping, where every function gets that call data as its arguments."""
    facts = call.facts()
    whole = {
        "call": facts,
        "post_call": extraction.values,
        "transcript": call.transcript,
        "executions": [
            {"function": e.get("function"), "ok": e.get("ok"), "content": e.get("content", "")}
            for e in call.executions
        ],
    }
    if not function.mapping:
        return Resolved(dict(whole), call.context())
    props = function.properties
    values: dict[str, Any] = {}
    missing: list[tuple[str, str, str]] = []
    for name, raw in function.mapping.items():
        entry = mapping_entry(raw)
        if isinstance(entry, str):  # refused by validation; never sent half-understood
            missing.append((name, str(raw), entry))
            continue
        if entry.source is None:
            values[name] = entry.value
            continue
        found, value, why = _lookup(entry.source, call, extraction)
        if found:
            values[name] = _fit(value, props.get(name))
        elif entry.has_default:
            values[name] = entry.default
        elif name in function.required:
            missing.append((name, entry.source, why or "no value"))
    code = isinstance(function.action, JavaScriptAction | PythonAction)
    arguments = {**whole, **values} if code else values
    return Resolved(arguments, call.context(hide=list(function.mapping)), missing)


# ------------------------------------------------------------------------------ running


async def run_post_call_function(
    executor: Executor,
    function: Function,
    call: FinishedCall,
    extraction: Extraction,
    resolved: Resolved | None = None,
) -> ToolResult:
    """Run one post-call function with its mapped values; never raises. A required parameter
    whose source has no value is not guessed: nothing is sent and the result says which."""
    resolved = resolved or resolve(function, call, extraction)
    if resolved.missing:
        detail = "; ".join(f"{p} <- {s}: {why}" for p, s, why in resolved.missing)
        payload = {
            "error": "missing_values",
            "detail": f"Not run: required parameters have no value ({detail}).",
            "missing": [p for p, _, _ in resolved.missing],
        }
        return ToolResult(
            function.name, False, error_content(payload), payload, error="missing_values"
        )
    key = f"{call.call_id}:post_call:{function.name}"
    try:
        return await executor.run(function, resolved.arguments, resolved.context, tool_call_id=key)
    except Exception as exc:  # Executor.run does not raise; a bug of ours must not either
        log.exception("post-call function %s raised", function.name)
        payload = {"error": "function_failed", "reason": "internal", "detail": str(exc)}
        return ToolResult(
            function.name, False, error_content(payload), payload, error="function_failed"
        )


def outcome_of(result: ToolResult, latency_ms: float | None = None) -> dict[str, Any]:
    """A post-call function's entry in the execution record."""
    detail = None
    if not result.ok and isinstance(result.data, dict):
        detail = result.data.get("detail")
    return {
        "function": result.function,
        "state": "succeeded"
        if result.ok
        else "skipped"
        if result.error == "missing_values"
        else "failed",
        "ok": result.ok,
        "status": result.status,
        "error": result.error,
        "detail": detail if isinstance(detail, str) else None,
        "latency_ms": round(latency_ms if latency_ms is not None else result.timings.total_ms, 3),
    }


def record_for(
    agent: Agent,
    call: FinishedCall,
    extraction: Extraction | None,
    post_call: Sequence[Mapping[str, Any]] = (),
    *,
    mask: Sequence[str] = (),
) -> dict[str, Any]:
    """The execution record the agent webhook receives (see :mod:`.postcall_record`)."""
    return execution_record(
        call.to_dict(),
        extraction.to_dict() if extraction is not None and wants_extraction(agent) else None,
        post_call,
        declared=[v.name for v in agent.post_call_variables],
        mask=mask,
    )


@dataclass
class Delivery:
    """How sending the record went."""

    url: str
    ok: bool
    status: int | None = None
    error: str | None = None
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "status": self.status,
            "error": self.error,
            "latency_ms": round(self.latency_ms, 3),
        }


async def deliver_record(
    executor: Executor,
    url: str,
    record: Mapping[str, Any],
    *,
    key: str,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = WEBHOOK_TIMEOUT_S,
    signing: str | Sequence[str] | None = None,
) -> Delivery:
    """POST the record once, through the executor's egress policy; never raises. ``key`` goes
    as ``Idempotency-Key`` (the same for every delivery of this call's record). With ``signing``
    secrets (``whsec_...``) the request carries the Standard Webhooks headers the platform's
    durable delivery sends (``webhook-id`` is ``key``); without, it is unsigned and a warning is
    logged once per process."""
    import httpx

    from ..actions.http import describe_send_error
    from ..decoding import ACCEPT_ENCODING
    from ..egress import EgressDenied
    from ..outbound import FetchFailed, HopFailed, Request, fetch, url_problem

    started = time.perf_counter()

    def failed(why: str, status: int | None = None) -> Delivery:
        log.warning("agent webhook %s: %s", url, why)
        return Delivery(url, False, status, why, (time.perf_counter() - started) * 1000)

    try:
        target = str(httpx.URL(url))
        problem = url_problem(httpx.URL(target))
    except Exception as exc:
        problem = str(exc) or type(exc).__name__
    if problem is not None:
        return failed(f"the URL cannot be requested ({problem})")
    body = json.dumps(record, ensure_ascii=False, default=str).encode()
    pairs = [
        ("Content-Type", "application/json"),
        ("Accept-Encoding", ACCEPT_ENCODING),
        ("Idempotency-Key", key),
        ("X-Voicefn-Call-Id", str(record.get("call_id", ""))),
        *((k, v) for k, v in (headers or {}).items()),
    ]
    if signing:
        from ..webhooks import signature_headers

        pairs += list(signature_headers(key, body, signing).items())
    else:
        _warn_unsigned()
    request = Request("POST", target, pairs, body)
    try:
        async with asyncio.timeout(timeout_s):
            response = await fetch(
                executor.transport, request, max_body=WEBHOOK_MAX_BODY, max_redirects=0
            )
        status = response.status
    except TimeoutError:
        return failed(f"no response within {timeout_s:g} s")
    except FetchFailed as exc:
        if exc.reason != "too_large" or exc.status is None:
            return failed(exc.detail, exc.status)
        status = exc.status
    except EgressDenied as exc:
        return failed(f"refused by the egress policy: {exc.reason}")
    except Exception as exc:
        hop = exc.error if isinstance(exc, HopFailed) else exc
        if isinstance(hop, EgressDenied):
            return failed(f"refused by the egress policy: {hop.reason}")
        return failed(describe_send_error(exc, target)[1])
    if 200 <= status < 300:
        return Delivery(url, True, status, None, (time.perf_counter() - started) * 1000)
    return failed(f"the endpoint returned {status}", status)


_warned_unsigned = False


def _warn_unsigned() -> None:
    global _warned_unsigned
    if not _warned_unsigned:
        _warned_unsigned = True
        log.warning(
            "the agent webhook is sent unsigned: give a whsec_ signing secret "
            "(CallSession(signing_secret=...), the adapters' signing_secret=..., or "
            "VOICEFN_WEBHOOK_SECRET for voicefn call) so that receivers can verify it"
        )


@dataclass
class PostCallReport:
    """What the inline post-call work did (``CallSession.post_call`` after ``finish()``)."""

    call: FinishedCall
    extraction: Extraction | None
    #: each post-call function's entry in the record (state, ok, status, error, latency)
    functions: list[dict[str, Any]]
    record: dict[str, Any]
    webhook: Delivery | None = None

    @property
    def ok(self) -> bool:
        """Everything ran and was delivered (an incomplete extraction is not a failure)."""
        return (
            (self.extraction is None or self.extraction.error is None)
            and all(f.get("ok") for f in self.functions)
            and (self.webhook is None or self.webhook.ok)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "extraction": self.extraction.to_dict() if self.extraction is not None else None,
            "functions": list(self.functions),
            "webhook": self.webhook.to_dict() if self.webhook is not None else None,
            "record": self.record,
        }


# ------------------------------------------------------------------------------ store


def stored_values(function: Function, result: ToolResult) -> dict[str, Any]:
    """``store: {variable: "<JMESPath>"}`` applied to a successful result's response: the
    values found (an expression that finds nothing, or null, stores nothing)."""
    if not function.store or not result.ok:
        return {}
    data = result.data
    if isinstance(data, str):  # a JSON text answer the runner kept as text
        with contextlib.suppress(ValueError):
            data = json.loads(data)
    out: dict[str, Any] = {}
    for name, expression in function.store.items():
        try:
            value = _compiled(expression).search(data)
        except Exception as exc:  # a JMESPath function given the wrong type, say
            log.warning("%s: store %s (%s) failed: %s", function.name, name, expression, exc)
            continue
        if value is not None:
            out[name] = value
    return out


_COMPILED: dict[str, Any] = {}


def _compiled(expression: str) -> Any:
    found = _COMPILED.get(expression)
    if found is None:
        import jmespath

        if len(_COMPILED) > 4096:
            _COMPILED.clear()
        found = _COMPILED[expression] = jmespath.compile(expression)
    return found


# ------------------------------------------------------------------------------ the plan


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
