"""The execution record for the agent webhook (:func:`record_for`) and its delivery: one POST
through the executor's egress policy, signed per Standard Webhooks when secrets are given."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .postcall_call import FinishedCall
from .postcall_extract import Extraction, wants_extraction
from .postcall_record import execution_record

if TYPE_CHECKING:
    from ..executor import Executor
    from .agent import Agent

log = logging.getLogger("voicefn.postcall")

WEBHOOK_TIMEOUT_S = 10.0
WEBHOOK_MAX_BODY = 64 * 1024


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
