"""Pure-ASGI middleware: request id, access log, HTTP metrics, the body limit, and the
last-resort 500.

A 500 says only ``{"error": "internal", "request_id": ...}``; the log line with that id has the
traceback (scrubbed, see :mod:`voicefn.server.logs`).
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

import orjson
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs
from .metrics import Metrics

log = logging.getLogger("voicefn.server")
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._\-]{1,100}$")


def _route_template(app: Any, scope: Scope) -> str:
    """The matched route's template (bounded label values), else "unmatched"."""
    fast = scope.get("voicefn.route")
    if isinstance(fast, str):
        return fast
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    router = getattr(app, "router", None)
    for candidate in getattr(router, "routes", ()):
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


def _json_response(status: int, payload: dict[str, Any]) -> tuple[Message, Message]:
    body = orjson.dumps(payload)
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class Observability:
    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, root: Any, max_body: int = 32 << 20
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.root = root  # the FastAPI app, for route templates
        self.max_body = max_body

    def _too_large(self) -> tuple[Message, Message]:
        return _json_response(
            413,
            {
                "error": "too_large",
                "message": f"the request body is larger than {self.max_body} bytes",
                "fix": "send a smaller body (a function or agent document is far smaller)",
            },
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode(
            "latin-1"
        )
        rid = given if _GIVEN_ID.match(given) else f"{random.getrandbits(128):032x}"
        scope["voicefn.request_id"] = rid
        rid_token = logs.request_id.set(rid)
        ws_token = logs.workspace_id.set(None)
        started = time.perf_counter()
        status = 500
        sent = False
        limit = self.max_body
        received = 0
        too_large = False  # the body passed the limit: whatever the app answers becomes a 413

        async def limited_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}  # and from now on, whoever asks
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    return {"type": "http.disconnect"}  # the app stops reading here
            return message

        replaced = False  # the app's answer became our 413 (its start went out as ours)
        replaced_body = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent, replaced, replaced_body
            if message["type"] == "http.response.start":
                if too_large:
                    message, replaced = self._too_large()[0], True
                status = message["status"]
                sent = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            elif replaced:  # our body, once; the app's own body is dropped
                if not replaced_body:
                    replaced_body = True
                    await send(self._too_large()[1])
                return
            await send(message)

        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                too_large = True  # said before a byte is read: the app never runs
                start, body = self._too_large()
                await send_with_id(start)
                await send_with_id(body)
            else:
                await self.app(scope, limited_receive, send_with_id)
        except Exception:
            if too_large:  # the app failed to read a body cut at the limit: not an error of ours
                if not sent:
                    start, body = self._too_large()
                    await send_with_id(start)
                    await send_with_id(body)
            else:
                log.exception("internal error on %s %s", scope["method"], scope["path"])
                if not sent:
                    start, body = _json_response(500, {"error": "internal", "request_id": rid})
                    await send_with_id(start)
                    await send(body)
                status = 500
        finally:
            seconds = time.perf_counter() - started
            route = _route_template(self.root, scope)
            method = scope["method"]
            self.metrics.http(method, route, status, seconds)
            if scope.get("voicefn.workspace_id") and logs.workspace_id.get() is None:
                logs.workspace_id.set(scope["voicefn.workspace_id"])
            logs.access(method, route, status, seconds)
            logs.request_id.reset(rid_token)
            logs.workspace_id.reset(ws_token)
