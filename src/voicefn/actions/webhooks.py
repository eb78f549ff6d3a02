"""The pre-call webhook (seed 002): fire-and-forget, never delays or fails the function.

URL resolution: ``pre_call_webhook_param`` is the switch. With it, the webhook goes to
``pre_call_webhook_url``, else to the agent-level webhook URL (``CallContext.webhook_url``);
without it, nothing fires. The body is the execution record (status ``in-progress``) merged with
the rendered ``pre_call_webhook_param``.

Signed per Standard Webhooks (:mod:`voicefn.webhooks`) when the sender has a secret: a fixed
``signing_secret`` (library use: ``executor.webhooks.signing_secret = "whsec_..."``), or a
``signing`` resolver that finds the call's secrets (``voicefn serve``: the agent's webhook
signing keys, else the workspace's). ``webhook-id`` is unique per webhook.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from ..context import CallContext
from ..decoding import ACCEPT_ENCODING
from ..outbound import FetchFailed, Request, fetch, url_problem
from ..templates import OMIT, Template
from ..transport import Transport
from .base import Invocation
from .http import describe_send_error

log = logging.getLogger("voicefn.webhooks")

#: How much of a webhook's answer is read (and thrown away) before the connection is closed.
RESPONSE_MAX_BYTES = 64 * 1024

#: Finds the secrets that sign a call's webhooks (empty: unsigned).
SigningResolver = Callable[[CallContext], Awaitable[Sequence[str]]]


def webhook_url(inv: Invocation) -> str | None:
    action = inv.function.action
    if action.pre_call_webhook_param is None:
        return None
    return action.pre_call_webhook_url or inv.context.webhook_url


def webhook_body(inv: Invocation) -> dict[str, Any]:
    ctx = inv.context
    record: dict[str, Any] = {
        "id": ctx.execution_id,
        "agent_id": ctx.agent_id,
        "status": "in-progress",
        "telephony_data": {
            "call_sid": ctx.call_sid,
            "from_number": ctx.from_number,
            "to_number": ctx.to_number,
        },
        "context_details": {"variables": dict(ctx.variables)},
        "function": inv.function.name,
    }
    template = inv.function.action.pre_call_webhook_param or {}
    rendered = Template(template).render(inv.values, inv.variables)
    if isinstance(rendered, dict):
        record.update(rendered)
    elif rendered is not OMIT:
        record["param"] = rendered
    return record


class WebhookSender:
    """Sends pre-call webhooks in the background; keeps the tasks so they are not collected.

    A webhook goes through :func:`voicefn.outbound.fetch` like every other request: the egress
    policy on each hop, and at most :data:`RESPONSE_MAX_BYTES` of the (unused) answer read.
    """

    def __init__(
        self, transport: Transport, timeout_s: float = 10.0, max_redirects: int = 5
    ) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self.tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0
        #: A fixed signing secret (or several, during a rotation) for every webhook.
        self.signing_secret: str | Sequence[str] | None = None
        #: Or the secrets of each call's workspace/agent (set by ``voicefn serve``).
        self.signing: SigningResolver | None = None

    def fire(self, inv: Invocation) -> asyncio.Task[None] | None:
        url = webhook_url(inv)
        if url is None:
            if inv.function.action.pre_call_webhook_param is not None:
                log.warning(
                    "%s: pre-call webhook has no URL (no pre_call_webhook_url, no agent webhook URL)",
                    inv.function.name,
                )
            return None
        try:
            body = webhook_body(inv)
        except Exception as exc:  # a bad template must not fail the function
            log.warning("%s: pre-call webhook not sent: %s", inv.function.name, exc)
            self.failed += 1
            return None
        task = asyncio.create_task(self._send(url, body, inv.function.name, inv.context))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _signature(self, body: bytes, ctx: CallContext, name: str) -> list[tuple[str, str]]:
        """The Standard Webhooks headers, when this sender signs; never fails the webhook."""
        secrets: str | Sequence[str] | None = self.signing_secret
        try:
            if self.signing is not None:
                secrets = list(await self.signing(ctx)) or secrets
            if not secrets:
                return []
            from ..webhooks import signature_headers

            return list(signature_headers(f"msg_{uuid.uuid4().hex}", body, secrets).items())
        except Exception as exc:
            log.warning("%s: pre-call webhook sent unsigned: %s", name, exc)
            return []

    async def _send(
        self, url: str, body: dict[str, Any], name: str, ctx: CallContext | None = None
    ) -> None:
        try:
            target = str(httpx.URL(url))
            problem = url_problem(httpx.URL(target))
        except Exception as exc:
            problem = str(exc) or type(exc).__name__
        if problem is not None:
            self._failed(name, f"the URL {url!r} cannot be requested ({problem})")
            return
        data = json.dumps(body, ensure_ascii=False, default=str).encode()
        headers = [("Content-Type", "application/json"), ("Accept-Encoding", ACCEPT_ENCODING)]
        if ctx is not None and (self.signing is not None or self.signing_secret):
            headers += await self._signature(data, ctx, name)
        request = Request("POST", target, headers, data)
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await fetch(
                    self.transport,
                    request,
                    max_body=RESPONSE_MAX_BYTES,
                    max_redirects=self.max_redirects,
                )
            status = response.status
        except TimeoutError:
            return self._failed(name, f"no response within {self.timeout_s:g} s")
        except FetchFailed as exc:
            if exc.reason != "too_large" or exc.status is None:  # a long answer is still an answer
                return self._failed(name, exc.detail + (f" (at {exc.hop})" if exc.hop else ""))
            status = exc.status
        except Exception as exc:
            return self._failed(name, describe_send_error(exc, request.url)[1])
        if 200 <= status < 300:
            self.sent += 1
        else:
            self._failed(name, f"the endpoint returned {status}")

    def _failed(self, name: str, why: str) -> None:
        self.failed += 1
        log.warning("%s: pre-call webhook failed: %s", name, why)

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for webhooks in flight (at most ``timeout_s``), e.g. before shutting down."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout_s)
