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

This module gathers the names; each concept lives in a sibling module: the call
(:mod:`.postcall_call`), reading the LLM's answer (:mod:`.postcall_answer`), the extraction
(:mod:`.postcall_extract`), the mapping (:mod:`.postcall_mapping`), running a function and the
inline report (:mod:`.postcall_run`), the record's delivery (:mod:`.postcall_delivery`), the
durable plan (:mod:`.postcall_plan`) and ``store:`` (:mod:`.stored`).
"""

from __future__ import annotations

from .postcall_answer import FieldResult, FieldStatus, check_value, parse_answer
from .postcall_call import ENDED_BY, EndedBy, FinishedCall
from .postcall_delivery import (
    WEBHOOK_MAX_BODY,
    WEBHOOK_TIMEOUT_S,
    Delivery,
    deliver_record,
    record_for,
)
from .postcall_extract import (
    MODES,
    Extraction,
    check_answer,
    extract,
    extraction_messages,
    extraction_schema,
    wants_extraction,
)
from .postcall_mapping import Resolved, resolve, transcript_text
from .postcall_plan import (
    FunctionWork,
    JobKind,
    PlannedJob,
    PostCallPlan,
    WebhookWork,
    expand,
)
from .postcall_run import PostCallReport, outcome_of, run_post_call_function
from .stored import stored_values

__all__ = [
    "ENDED_BY",
    "MODES",
    "WEBHOOK_MAX_BODY",
    "WEBHOOK_TIMEOUT_S",
    "Delivery",
    "EndedBy",
    "Extraction",
    "FieldResult",
    "FieldStatus",
    "FinishedCall",
    "FunctionWork",
    "JobKind",
    "PlannedJob",
    "PostCallPlan",
    "PostCallReport",
    "Resolved",
    "WebhookWork",
    "check_answer",
    "check_value",
    "deliver_record",
    "expand",
    "extract",
    "extraction_messages",
    "extraction_schema",
    "outcome_of",
    "parse_answer",
    "record_for",
    "resolve",
    "run_post_call_function",
    "stored_values",
    "transcript_text",
    "wants_extraction",
]
