"""The execution record: what the agent webhook receives after a call (seed 002), and its JSON
Schema (served at ``/v1/schemas/execution-record.json``, documented in the README).

The pre-call webhook already sends the in-progress shape (``id``, ``agent_id``,
``status: "in-progress"``, ``telephony_data``, ``context_details``); the record after the call
has the same fields with ``status: "completed"``, plus timings, the transcript, the summary and
outcome, the extracted variables and every function execution with its outcome and latency.
Light: no HTTP client, so the server's schema route imports it cheaply.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

SCHEMA_ID = "https://voicefn.dev/schemas/execution-record.json"
#: Bumped when a field changes meaning; new optional fields keep the version.
RECORD_VERSION = 1

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_TIMINGS = {
    "type": "object",
    "description": "Milliseconds, from the moment the LLM request of that response was sent.",
    "properties": {
        "time_to_filler_ms": {"type": ["number", "null"]},
        "time_to_request_ms": {"type": ["number", "null"]},
        "request_ms": {"type": ["number", "null"]},
        "time_to_first_token_ms": {"type": ["number", "null"]},
    },
}
_EXECUTION = {
    "type": "object",
    "required": ["function", "phase", "ok", "latency_ms"],
    "properties": {
        "function": {"type": "string"},
        "phase": {"enum": ["pre_call", "in_call"]},
        "tool_call_id": _NULLABLE_STRING,
        "arguments": {
            "description": "What the function ran with (the LLM's JSON text when unparseable)",
            "type": ["object", "string"],
        },
        "ok": {"type": "boolean"},
        "status": {"type": ["integer", "null"], "description": "the HTTP status, if any"},
        "error": {
            **_NULLABLE_STRING,
            "description": "request_failed, missing_arguments, function_failed, ...",
        },
        "latency_ms": {"type": "number"},
        "timings": _TIMINGS,
        "deduplicated": {
            "type": "boolean",
            "description": "not sent again: the same call already ran in this conversation",
        },
        "stored": {
            "type": "object",
            "description": "the variables this execution stored (the function's store:)",
        },
    },
}
_FIELD = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {
            "enum": ["ok", "missing", "invalid"],
            "description": "ok: extracted and valid; missing: the transcript does not say (or "
            "the LLM gave no usable answer); invalid: the LLM's value broke the declared type",
        },
        "value": {"description": "the value (status ok)"},
        "found": {"description": "what the LLM gave (status invalid)"},
        "reason": _NULLABLE_STRING,
    },
}
_POST_CALL = {
    "type": "object",
    "required": ["function", "state"],
    "properties": {
        "function": {"type": "string"},
        "state": {
            "enum": ["succeeded", "failed", "skipped", "queued"],
            "description": "queued: handed to the platform's job queue (see /v1/calls/{id})",
        },
        "ok": {"type": ["boolean", "null"]},
        "status": {"type": ["integer", "null"]},
        "error": _NULLABLE_STRING,
        "detail": _NULLABLE_STRING,
        "latency_ms": {"type": ["number", "null"]},
    },
}

#: The JSON Schema (draft 2020-12) of the execution record.
EXECUTION_RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "voicefn execution record",
    "description": "What the agent webhook receives after a call (status completed). Pre-call "
    "webhooks send the same id, agent_id, telephony_data and context_details with status "
    "in-progress, merged with the function's pre_call_webhook_param.",
    "type": "object",
    "required": [
        "version",
        "id",
        "call_id",
        "agent_id",
        "status",
        "telephony_data",
        "started_at",
        "ended_at",
        "duration_s",
        "ended_by",
        "transcript",
        "executions",
    ],
    "properties": {
        "version": {"const": RECORD_VERSION},
        "id": {"type": "string", "description": "the execution id (one per call)"},
        "call_id": {
            "type": "string",
            "description": "the telephony call id (call_sid), else the execution id",
        },
        "agent_id": {"type": "string"},
        "status": {"const": "completed"},
        "telephony_data": {
            "type": "object",
            "properties": {
                "call_sid": _NULLABLE_STRING,
                "from_number": _NULLABLE_STRING,
                "to_number": _NULLABLE_STRING,
                "transfer_number": {
                    **_NULLABLE_STRING,
                    "description": "where the call was transferred, if it was",
                },
            },
        },
        "language": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": "string", "format": "date-time"},
        "duration_s": {"type": "number", "minimum": 0},
        "ended_by": {
            "enum": ["caller", "agent", "transfer", "system"],
            "description": "caller: hung up; agent: end_call; transfer: transfer_call; "
            "system: the host ended it (an error, a time limit)",
        },
        "transcript": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role", "text"],
                "properties": {"role": {"enum": ["caller", "agent"]}, "text": {"type": "string"}},
            },
        },
        "summary": {**_NULLABLE_STRING, "description": "post_call.summary, when switched on"},
        "outcome": {
            "enum": ["success", "failed", "transferred", "no-answer", None],
            "description": "post_call.outcome, when switched on",
        },
        "outcome_reason": _NULLABLE_STRING,
        "extracted_variables": {
            "type": "object",
            "description": "every declared post-call variable: its value, or null when it "
            "was missing or invalid (never invented; extraction.fields says which)",
        },
        "extraction": {
            "type": ["object", "null"],
            "description": "how the extraction went; null when the agent extracts nothing",
            "properties": {
                "ok": {
                    "type": "boolean",
                    "description": "the LLM answered and every required variable is valid",
                },
                "error": _NULLABLE_STRING,
                "skipped": _NULLABLE_STRING,
                "fields": {"type": "object", "additionalProperties": _FIELD},
            },
        },
        "context_details": {
            "type": "object",
            "properties": {
                "variables": {
                    "type": "object",
                    "description": "the call's variables at its end (the agent's, the call's, "
                    "and what pre-call and in-call functions stored); secrets masked",
                }
            },
        },
        "executions": {
            "type": "array",
            "description": "every pre-call and in-call function execution, in order",
            "items": _EXECUTION,
        },
        "post_call": {
            "type": "array",
            "description": "the post-call functions: their outcome (run inline) or queued",
            "items": _POST_CALL,
        },
    },
}


def iso(ts: float) -> str:
    """UNIX seconds as an ISO 8601 UTC time with milliseconds."""
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def execution_record(
    call: Mapping[str, Any],
    extraction: Mapping[str, Any] | None,
    post_call: Sequence[Mapping[str, Any]] = (),
    *,
    declared: Sequence[str] = (),
    mask: Sequence[str] = (),
) -> dict[str, Any]:
    """The record of a finished call, from its data (``FinishedCall.to_dict()``), the
    extraction (``Extraction.to_dict()``, None when nothing is extracted), the post-call
    functions' outcomes, the declared post-call variables' names and the names of secret
    variables (shown as ``[secret]``)."""
    values = dict((extraction or {}).get("values") or {})
    variables = {
        k: ("[secret]" if k in mask else v) for k, v in (call.get("variables") or {}).items()
    }
    started = float(call.get("started_at") or 0.0)
    ended = float(call.get("ended_at") or started)
    call_id = call.get("call_sid") or call["execution_id"]
    record: dict[str, Any] = {
        "version": RECORD_VERSION,
        "id": call["execution_id"],
        "call_id": call_id,
        "agent_id": call.get("agent_id") or "",
        "status": "completed",
        "telephony_data": {
            "call_sid": call.get("call_sid"),
            "from_number": call.get("from_number"),
            "to_number": call.get("to_number"),
            "transfer_number": call.get("transfer_number"),
        },
        "language": call.get("language") or "en",
        "started_at": iso(started),
        "ended_at": iso(ended),
        "duration_s": round(max(0.0, ended - started), 3),
        "ended_by": call.get("ended_by") or "caller",
        "transcript": list(call.get("transcript") or []),
        "summary": values.get("summary"),
        "outcome": values.get("outcome"),
        "outcome_reason": values.get("outcome_reason"),
        "extracted_variables": {name: values.get(name) for name in declared},
        "extraction": None,
        "context_details": {"variables": variables},
        "executions": [_execution(e) for e in call.get("executions") or ()],
        "post_call": [dict(p) for p in post_call],
    }
    if extraction is not None:
        record["extraction"] = {
            "ok": bool(extraction.get("ok")),
            "error": extraction.get("error"),
            "skipped": extraction.get("skipped"),
            "fields": dict(extraction.get("fields") or {}),
        }
    return record


def _execution(e: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "function": e.get("function"),
        "phase": e.get("phase") or "in_call",
        "tool_call_id": e.get("tool_call_id"),
        "arguments": e.get("arguments") if e.get("arguments") is not None else {},
        "ok": bool(e.get("ok")),
        "status": e.get("status"),
        "error": e.get("error"),
        "latency_ms": float(e.get("latency_ms") or 0.0),
        "timings": {
            k: round(v, 3) if isinstance(v, float) else v
            for k, v in (e.get("timings") or {}).items()
        },
        "deduplicated": bool(e.get("deduplicated")),
        "stored": dict(e.get("stored") or {}),
    }
