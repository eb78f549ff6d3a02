"""Pure-ASGI middleware: request id, access log, HTTP metrics, and the last-resort 500.

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


class Observability:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, root: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.root = root  # the FastAPI app, for route templates

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

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                sent = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("internal error on %s %s", scope["method"], scope["path"])
            if not sent:
                body = orjson.dumps({"error": "internal", "request_id": rid})
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
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
