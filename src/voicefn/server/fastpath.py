"""The execute route without FastAPI's routing and dependency solving, for well-formed requests.

A ``POST /v1/agents/{agent_id}/functions/{name}/execute`` with a known API key and a body that
parses as :class:`~voicefn.server.schemas.ExecuteIn` is answered here by the same
:func:`~voicefn.server.routes.execute.run_execute` as the route. Anything else (no or a bad key,
a body with problems, another content type) goes on to FastAPI untouched, which answers it the
usual way (401, 422 with problems, ...), so there is one behaviour and one OpenAPI description.
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs
from .freshness import Freshness
from .platform import Platform
from .responses import dumps
from .routes.execute import ROUTE, run_execute
from .schemas import ExecuteIn

_PATH = re.compile(r"^/v1/agents/([A-Za-z0-9_-]{1,40})/functions/([a-zA-Z0-9_-]{1,64})/execute$")
MAX_BODY = 1 << 20


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class ExecuteFastPath:
    def __init__(self, app: ASGIApp, *, platform: Platform, freshness: Freshness) -> None:
        self.app = app
        self.platform = platform
        self.freshness = freshness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        auth = _header(scope, b"authorization") if match else None
        content_type = _header(scope, b"content-type") or b"application/json"
        if (
            match is None
            or auth is None
            or not auth.startswith(b"Bearer ")
            or not content_type.startswith(b"application/json")
        ):
            await self.app(scope, receive, send)
            return
        if self.freshness.stale():
            await self.freshness.catch_up()
        principal = await self.platform.catalog.principal(auth[7:].decode("latin-1"))
        if principal is None:
            await self.app(scope, receive, send)  # FastAPI answers the 401
            return
        body, complete = await _read(receive)
        if not complete:  # too large (or gone): FastAPI reads the rest and decides
            await self.app(scope, _replay(body, receive, more=True), send)
            return
        try:
            payload = ExecuteIn.model_validate_json(body or b"{}")
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)  # FastAPI answers the 422
            return
        ws = principal.workspace
        scope["voicefn.workspace_id"] = ws.id
        scope["voicefn.route"] = ROUTE
        logs.workspace_id.set(ws.id)
        rid = scope.get("voicefn.request_id")
        status, out = await run_execute(
            self.platform, ws, match.group(1), match.group(2), payload, rid
        )
        data = dumps(out)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """The request body; ``complete`` is False when it is too large to handle here."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_BODY:
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
    """A ``receive`` that hands the body read so far back first, then the rest of the stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay
