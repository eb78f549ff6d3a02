"""Receive voicefn's webhooks: verify the signature, deduplicate on the id, then act.

    VOICEFN_WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 8790

The secret is the workspace's (or the agent's) signing key: ``POST /v1/signing-keys`` shows a
new one, ``GET /v1/signing-keys/{id}`` an existing one. Several, separated by spaces, are all
accepted (while you rotate). voicefn delivers at least once, so the same webhook can arrive
again (after a timeout, a 5xx, a crash): ``webhook-id`` (equal to ``Idempotency-Key``) is the
same every time; act on it once. Answer 2xx quickly; a 5xx, 408, 425 or 429 (honouring your
``Retry-After``) makes voicefn retry, any other 4xx stops it.

The same receiver in Flask::

    from flask import Flask, request
    from voicefn.webhooks import WebhookVerificationError, verify

    app = Flask(__name__)

    @app.post("/voicefn")
    def hook():
        try:
            verify(request.headers, request.get_data(), SECRETS)   # the raw body
        except WebhookVerificationError:
            return "", 401
        if seen(request.headers["webhook-id"]):
            return "", 200
        handle(request.get_json())
        return "", 200
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from voicefn.webhooks import WebhookVerificationError, verify


def create_app(
    secrets: list[str], handle: Callable[[dict[str, Any]], None] | None = None
) -> FastAPI:
    """A receiver for ``secrets``; ``handle(event)`` runs once per webhook id."""
    app = FastAPI(title="voicefn webhook receiver")
    seen: set[str] = set()  # use your database in production: it must survive restarts
    lock = threading.Lock()
    app.state.handled = []

    @app.post("/voicefn")
    async def hook(request: Request) -> Response:
        body = await request.body()  # the raw bytes: re-serialised JSON would not verify
        try:
            verify(request.headers, body, secrets)
        except WebhookVerificationError as exc:
            return Response(str(exc), status_code=401)
        webhook_id = request.headers["webhook-id"]
        with lock:
            if webhook_id in seen:
                return Response(status_code=200)  # delivered before: acknowledge, do nothing
            seen.add(webhook_id)
        event = await request.json()
        app.state.handled.append(event)
        if handle is not None:
            handle(event)
        return Response(status_code=204)

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    args = parser.parse_args()
    secrets = os.environ.get("VOICEFN_WEBHOOK_SECRET", "").split()
    if not secrets:
        raise SystemExit("set VOICEFN_WEBHOOK_SECRET to the signing key's secret (whsec_...)")

    def show(event: dict[str, Any]) -> None:
        print(f"{event.get('status', '?')} {event.get('call_id') or event.get('id')}", flush=True)

    uvicorn.run(create_app(secrets, show), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
