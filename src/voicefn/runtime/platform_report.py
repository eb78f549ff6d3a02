"""Report a finished call to a running ``voicefn serve`` instead of running its post-call work
here: ``POST /v1/agents/{agent_id}/calls`` stores the call and queues its post-call work as
durable jobs (extraction, each post-call function, the signed agent webhook).

The service answers 202 for a new call and 200 for one it already has (same agent and call id),
so a report that may or may not have arrived is simply sent again: up to ``attempts`` times
while the service cannot be reached or answers 429 or 5xx.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from .postcall import FinishedCall

log = logging.getLogger("voicefn.postcall")

#: ``ExecutionIn.content``'s limit on the service: what the LLM read, cut to fit.
_CONTENT_LIMIT = 16_384


@dataclass(frozen=True)
class PlatformTarget:
    """Where finished calls go: the service's base URL, a workspace API key and the agent's id
    there (``agent_...``, as ``POST /v1/agents`` answered)."""

    url: str
    api_key: str = field(repr=False)
    agent_id: str
    timeout_s: float = 10.0
    attempts: int = 3

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(
                f"PlatformTarget.url: {self.url!r} is not an http(s) URL; give the service's "
                "base URL, e.g. http://127.0.0.1:8700"
            )
        if not self.api_key:
            raise ValueError("PlatformTarget.api_key: empty; give a workspace API key")
        if not self.agent_id:
            raise ValueError("PlatformTarget.agent_id: empty; give the agent's id on the service")
        if self.attempts < 1:
            raise ValueError("PlatformTarget.attempts: at least 1")


@dataclass
class PlatformReceipt:
    """How reporting the call went: the stored call's id and its queued jobs when ``ok``."""

    url: str
    ok: bool
    status: int | None = None
    #: False: the service already had this call (an earlier report arrived)
    created: bool | None = None
    call_id: str | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "status": self.status,
            "created": self.created,
            "call_id": self.call_id,
            "jobs": list(self.jobs),
            "error": self.error,
        }


def report_body(agent_id: str, call: FinishedCall) -> dict[str, Any]:
    """The JSON the calls endpoint takes for ``call`` (the service's own ``CallReport``)."""
    from ..server.calls import CallReport

    del agent_id  # in the URL, not the body
    executions = [
        {**e, "content": e["content"][:_CONTENT_LIMIT]} if isinstance(e.get("content"), str) else e
        for e in call.executions
    ]
    report = CallReport.from_finished(replace(call, executions=executions))
    return report.model_dump(mode="json", exclude_none=True)


async def report_call(target: PlatformTarget, call: FinishedCall) -> PlatformReceipt:
    """POST ``call`` to the service; never raises (a failure is a receipt with ``error``)."""
    import httpx

    url = f"{target.url.rstrip('/')}/v1/agents/{target.agent_id}/calls"
    try:
        body = report_body(target.agent_id, call)
    except Exception as exc:  # a value the service's schema refuses
        return _failed(url, f"the call cannot be reported: {exc}")
    headers = {"Authorization": f"Bearer {target.api_key}"}
    error = "not sent"
    status: int | None = None
    try:
        async with httpx.AsyncClient(timeout=target.timeout_s, headers=headers) as client:
            for attempt in range(target.attempts):
                if attempt:
                    await asyncio.sleep(0.5 * 2 ** (attempt - 1))
                try:
                    response = await client.post(url, json=body)
                except httpx.HTTPError as exc:
                    status, error = None, f"{type(exc).__name__}: {exc}".rstrip(": ")
                    continue
                status = response.status_code
                if status in (200, 202):
                    return _accepted(url, status, response)
                error = f"the service answered {status}: {response.text[:500]}"
                if status != 429 and status < 500:
                    break  # a key, an agent id or a body it refuses: sending again won't help
    except Exception as exc:  # a URL httpx cannot use, ...: a receipt, never an exception
        return _failed(url, f"{type(exc).__name__}: {exc}".rstrip(": "), status)
    return _failed(url, error, status)


def _accepted(url: str, status: int, response: Any) -> PlatformReceipt:
    """The receipt of a 200/202: the service's JSON answer, or a failure when what answered is
    not the service (a proxy's HTML page, say)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("call"), dict):
        what = response.headers.get("content-type") or "no content type"
        return _failed(
            url,
            f"the answer ({status}, {what}) is not the calls endpoint's: check that the URL "
            "is the voicefn service's base URL",
            status,
        )
    jobs = data.get("jobs")
    return PlatformReceipt(
        url,
        True,
        status,
        bool(data.get("created")),
        data["call"].get("id"),
        list(jobs) if isinstance(jobs, list) else [],
    )


def _failed(url: str, error: str, status: int | None = None) -> PlatformReceipt:
    log.warning("reporting the call to %s failed: %s", url, error)
    return PlatformReceipt(url, False, status, error=error)
