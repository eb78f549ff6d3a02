"""Which HTTP request of a failed sandboxed run explains the failure, said two ways.

A function's own error often hides what went wrong (axios: "Network Error"). The supervisor
knows: every request went through it and is recorded in ``Outcome.http``. From those records
alone (never from text the code printed) :func:`failed_request` picks the request that explains
a failure, :func:`engine_note` says it for the developer (the request with a redacted URL, the
engine's reason and the fix) and :func:`llm_summary` says it for an LLM (what it can act on,
no internals). Both sandboxes record requests the same way (``common.EgressCalls``).
"""

from __future__ import annotations

import re
import urllib.parse
from http import HTTPStatus
from typing import Any

from .common import clean_text, safe_url

__all__ = ["engine_note", "failed_request", "llm_summary", "redacted_url", "with_engine_note"]

DENIED = "refused by the egress policy: "
#: the record of the request over the run's limit: that failure has an outcome of its own
_TOO_MANY = "too many requests"
_TIMED_OUT = re.compile(r"timed out|no response within")
_NOT_SENT = re.compile(r"^(not sent|invalid URL|malformed request)\b")
_ALLOW_ADVICE = "an allow-list entry"
MAX_NOTE = 600


def _unanswered(record: dict[str, Any]) -> bool:
    """No answer when the run ended (``cancelled``: the engine stopped it at the end)."""
    return "status" not in record and record.get("error") in (None, "cancelled")


def _failed(record: dict[str, Any]) -> bool:
    """The engine refused it, it failed in the engine, or the server answered an error."""
    error = record.get("error")
    if isinstance(error, str):
        return error not in ("cancelled", _TOO_MANY)
    status = record.get("status")
    return isinstance(status, int) and status >= 400


def failed_request(
    http: list[dict[str, Any]], error: str | None
) -> tuple[dict[str, Any], int] | None:
    """The request that explains a run that ended with ``error``, and how many others failed.

    The last request the engine saw fail (refused, failed, or answered 4xx/5xx); for a
    ``timeout`` with none, the last one still waiting for its answer. None for a run that did
    not fail with an exception or a timeout, or when no request fits.
    """
    if error not in ("exception", "timeout"):
        return None
    failed = [r for r in http if _failed(r)]
    if not failed and error == "timeout":
        failed = [r for r in http if _unanswered(r)]
    if not failed:
        return None
    return failed[-1], len(failed) - 1


def redacted_url(url: str) -> str:
    """``url`` as a note shows it: :func:`~voicefn.sandbox.common.safe_url`, shorter."""
    return safe_url(url, 300)


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def engine_note(record: dict[str, Any], others: int = 0) -> str:
    """What the engine saw of one request, for the developer: ``GET https://… was refused by
    the egress policy: <why>. <how to allow it>`` and the like."""
    url = redacted_url(str(record.get("url", "")))
    request = f"{record.get('method', '?')} {url}"
    error = record.get("error")
    if isinstance(error, str) and error.startswith(DENIED):
        note = f"{request} was refused by the egress policy: {error[len(DENIED) :]}"
        host = urllib.parse.urlsplit(url).hostname
        if _ALLOW_ADVICE in error and host:
            note = note.rstrip(".") + f" (for this request: {host})."
    elif _unanswered(record):
        note = (
            f"{request} had no answer yet when the function stopped waiting for it (its own "
            "timeout or the function's time limit); check that the server answers in time"
        )
    elif isinstance(error, str) and _TIMED_OUT.search(error):
        note = f"{request} got no answer in time ({error}); check that the server answers in time"
    elif isinstance(error, str) and _NOT_SENT.match(error):
        note = f"{request} was not sent: {error}"
    elif isinstance(error, str):
        note = f"{request} failed in the engine: {error}"
    else:
        note = f"{request} was answered {_status_text(int(record.get('status', 0)))}"
    if others:
        note += f" ({others} more request{'s' if others > 1 else ''} failed: see http)"
    return clean_text(note, MAX_NOTE)


def with_engine_note(detail: str, http: list[dict[str, Any]], error: str | None) -> str:
    """``detail`` (the function's error text) followed by what the engine saw of the request
    that explains the failure, if one does. The engine's own reason, where the code's error
    already repeats it (fetch's ``TypeError: fetch failed: <reason>``), is said once."""
    found = failed_request(http, error)
    if found is None:
        return detail
    record, others = found
    reason = record.get("error")
    if isinstance(reason, str) and len(reason) > 8 and reason in detail:
        detail = detail.replace(f": {reason}", "").replace(reason, "").rstrip(" :")
    return f"{detail}; the engine saw: {engine_note(record, others)}"


def llm_summary(http: list[dict[str, Any]], error: str | None) -> str | None:
    """The failure as an LLM may read it (what it can do about it, no URLs or internals), when
    a request explains it; None otherwise."""
    found = failed_request(http, error)
    if found is None:
        return None
    record = found[0]
    reason = record.get("error")
    status = record.get("status")
    service = "a service the function needs"
    if isinstance(reason, str) and reason.startswith(DENIED):
        return f"{service} cannot be reached from here (not allowed); trying again will not help"
    if isinstance(reason, str) and _NOT_SENT.match(reason):
        return "the function built a request that cannot be sent; trying again will not help"
    if _unanswered(record) or (isinstance(reason, str) and _TIMED_OUT.search(reason)):
        return f"{service} did not answer in time; it may work if tried again later"
    if isinstance(reason, str) and reason.startswith("too_large"):
        return f"{service} sent an answer too large to use"
    if isinstance(reason, str):
        return f"{service} could not be reached; it may work if tried again later"
    if isinstance(status, int) and status >= 500:
        return f"{service} failed (HTTP {status}); it may work if tried again later"
    return f"{service} refused the request (HTTP {status})"
