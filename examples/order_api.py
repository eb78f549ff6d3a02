"""A tiny store API for trying voicefn locally: order lookup and appointment booking.

    ./dev python examples/order_api.py [--port 8787]     (--port 0: any free port)

GET  /orders?order_id=ORD-78234      -> the order, or 404
POST /appointments  (Bearer demo-token, JSON body) -> the booking, or 401/422
POST /transfer-hook  accepts the transfer's pre-call webhook
POST /follow-ups     a post-call function's target (examples/followup_agent.yaml): the follow-up
POST /call-records   the agent webhook: receives each call's execution record
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ORDERS = {
    "ORD-78234": {"status": "shipped", "estimated_delivery": "2026-12-01", "carrier": "UPS"},
    "ORD-11111": {"status": "processing", "estimated_delivery": "2026-12-05", "carrier": None},
}
TOKEN = "Bearer demo-token"
#: What arrived, newest last (examples/followup_agent.yaml's post-call function and webhook).
FOLLOW_UPS: list[Any] = []
CALL_RECORDS: list[Any] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/orders":
            return self._send(404, {"message": "no such endpoint"})
        order_id = parse_qs(url.query).get("order_id", [""])[0]
        order = ORDERS.get(order_id.upper())
        if order is None:
            return self._send(
                404, {"message": f"No order {order_id!r}. Ask the caller to check the number."}
            )
        self._send(200, {"order_id": order_id.upper(), **order})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/transfer-hook":  # the transfer's pre-call webhook
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return self._send(200, {"received": True})
        if path in ("/follow-ups", "/call-records"):
            body = json.loads(
                self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"
            )
            if path == "/call-records":
                CALL_RECORDS.append(body)
                return self._send(200, {"received": True})
            FOLLOW_UPS.append(body)
            return self._send(201, {"follow_up_id": f"FU-{len(FOLLOW_UPS)}", **body})
        if urlsplit(self.path).path != "/appointments":
            return self._send(404, {"message": "no such endpoint"})
        if self.headers.get("Authorization") != TOKEN:
            return self._send(401, {"message": "bad token"})
        length = int(self.headers.get("Content-Length") or 0)
        booking = json.loads(self.rfile.read(length) or b"{}")
        missing = [
            k for k in ("patient_name", "preferred_date", "preferred_time") if k not in booking
        ]
        if missing:
            return self._send(422, {"message": f"missing {', '.join(missing)}"})
        self._send(201, {"booking_id": "APT-1001", "confirmed": True, **booking})


def serve(port: int) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    port = parser.parse_args().port
    try:
        server = serve(port)
    except OSError as exc:  # most often: another copy is still running
        print(
            f"order API: cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); the port is "
            "busy: stop what holds it, or pass --port 0 for a free port (the example functions "
            "name 8787: edit their URL to match)",
            file=sys.stderr,
        )
        return 1
    print(f"order API on http://127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
