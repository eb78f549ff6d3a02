"""Loopback servers for the framework adapters' tests: a store API and LiveKit's SIP API.
(Fixtures in conftest.py; helpers importable as ``adapters_support``.)

Both are real aiohttp servers on 127.0.0.1 (ephemeral ports) in the test's own event loop, so a
test can hold an answer until something else happened (the filler was said, the caller barged
in) without any timing.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

#: A safety net for waits on events a broken adapter would never produce (not a timing check).
NEVER = 60.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    body: bytes = b""  # as received (a signature is over these bytes)


@dataclass
class StoreAPI:
    """``GET /orders?order_id=`` (404 for an unknown order), ``POST /bookings``, ``GET /down``
    (503), ``GET /track?carrier=`` and, for post-call work, ``POST /follow-ups`` (201) and
    ``POST /hooks/record`` (the agent webhook). ``hold()`` keeps every answer back until
    ``release()``; ``arrived`` is set by the first request that is held; ``wait_for`` returns
    once a request to a path came."""

    url: str = ""
    received: list[Request] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _release: asyncio.Event | None = None
    _came: asyncio.Event = field(default_factory=asyncio.Event)

    def hold(self) -> None:
        self._release = asyncio.Event()
        self.arrived = asyncio.Event()

    def release(self) -> None:
        assert self._release is not None
        self._release.set()

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.received if r.method == method and r.path == path)

    def to(self, path: str) -> list[Request]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str) -> Request:
        """The first request to ``path``, once it came (NEVER: a broken adapter's net)."""

        async def first() -> Request:
            while not self.to(path):
                self._came.clear()
                await self._came.wait()
            return self.to(path)[0]

        return await asyncio.wait_for(first(), NEVER)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(
            Request(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                json.loads(body) if body else None,
                body,
            )
        )
        self._came.set()
        if self._release is not None:
            self.arrived.set()
            await self._release.wait()
        if request.path == "/orders":
            order = request.query.get("order_id", "")
            if order != "ORD-1":
                return web.json_response({"message": f"Order {order} not found"}, status=404)
            return web.json_response({"order_id": order, "status": "shipped", "carrier": "UPS"})
        if request.path == "/bookings":
            data = json.loads(body) if body else {}
            return web.json_response({"booking_id": "BK-7", "slot": data.get("slot")}, status=201)
        if request.path == "/down":
            return web.json_response({"message": "down for maintenance"}, status=503)
        if request.path == "/track":
            carrier = request.query.get("carrier", "")
            return web.json_response({"carrier": carrier, "eta": f"{carrier} says tomorrow"})
        if request.path == "/follow-ups":
            return web.json_response({"follow_up_id": "FU-1"}, status=201)
        if request.path == "/hooks/record":
            return web.json_response({"received": True})
        return web.json_response({"message": "no such route"}, status=404)


@dataclass
class SipAPI:
    """LiveKit's ``TransferSIPParticipant`` Twirp endpoint (protobuf), recording requests."""

    url: str = ""
    transfers: list[Any] = field(default_factory=list)
    fail: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        from livekit import api

        body = await request.read()
        self.transfers.append(api.TransferSIPParticipantRequest.FromString(body))
        if self.fail:
            payload = {"code": "failed_precondition", "msg": "transfer rejected by trunk"}
            return web.json_response(payload, status=412)
        answer = api.TransferSIPParticipantResponse(
            transfer_id="ST_1", status=api.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL
        )
        return web.Response(body=answer.SerializeToString(), content_type="application/protobuf")


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    port = server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


def store_agent(api_url: str, **extra: Any) -> dict[str, Any]:
    """An agent document (voicefn dialect) with the store's functions and the builtins."""
    functions: list[dict[str, Any]] = [
        {
            "name": "check_order_status",
            "description": "Look up an order when the caller asks where it is.",
            "filler": {
                "en": "One moment {customer_name}, checking your order.",
                "hi": "Ek minute.",
            },
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "description": "The order ID, e.g. ORD-1"},
                    "from_number": {"type": "string", "description": "The caller's number"},
                },
                "required": ["order_id", "from_number"],
            },
            "action": {
                "method": "GET",
                "url": f"{api_url}/orders",
                "param": {"order_id": "%(order_id)s", "phone": "%(from_number)s"},
            },
        },
        {
            "name": "book_slot",
            "description": "Book a delivery slot the caller chose.",
            "filler": "Booking that for you.",
            "parameters": {
                "type": "object",
                "properties": {"slot": {"type": "string", "description": "e.g. tomorrow 9am"}},
                "required": ["slot"],
            },
            "action": {"method": "POST", "url": f"{api_url}/bookings"},
        },
        {
            "name": "check_stock",
            "description": "Check stock (the stock service).",
            "parameters": {"type": "object", "properties": {}},
            "action": {"method": "GET", "url": f"{api_url}/down"},
        },
        {
            "name": "end_call",
            "description": "End the call when the caller says goodbye.",
            "action": {
                "type": "builtin",
                "builtin": "end_call",
                "message": "Goodbye {customer_name}, thanks for calling!",
            },
        },
        {
            "name": "transfer_to_support",
            "description": "Transfer the caller to a person.",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why"}},
            },
            "action": {
                "type": "builtin",
                "builtin": "transfer_call",
                "transfer_number": "+15550001111",
            },
        },
        {
            "name": "text_tracking_link",
            "description": "Text the caller their tracking link.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "description": "The order"}},
                "required": ["order_id"],
            },
            "action": {
                "type": "builtin",
                "builtin": "send_sms",
                "message": "Track %(order_id)s at https://track.example.com/%(order_id)s",
            },
        },
    ]
    doc: dict[str, Any] = {
        "name": "store-agent",
        "system_prompt": "You are Sam from Acme, speaking to {customer_name}.",
        "welcome_message": "Hi {customer_name}, this is Sam from Acme.",
        "variables": {"customer_name": "there"},
        "llm": {"model": "test-model"},
        "functions": functions,
    }
    doc.update(extra)
    return doc


def postcall_agent(api_url: str) -> dict[str, Any]:
    """:func:`store_agent` with a whole call's lifecycle: ``check_order_status`` stores the
    order's status and carrier, ``track_parcel`` sends the stored carrier (``{carrier}``), a
    post-call function gets the stored status and the transcript, and the agent webhook."""
    doc = store_agent(api_url, webhook_url=f"{api_url}/hooks/record")
    doc["functions"][0]["store"] = {"order_status": "status", "carrier": "carrier"}
    doc["functions"].append(
        {
            "name": "track_parcel",
            "description": "Where the parcel is now, with the carrier's tracking.",
            "parameters": {"type": "object", "properties": {}},
            "action": {
                "method": "GET",
                "url": f"{api_url}/track",
                "param": {"carrier": "{carrier}"},
            },
        }
    )
    doc["functions"].append(
        {
            "name": "create_follow_up",
            "phase": "post_call",
            "description": "Open a follow-up for the call.",
            "parameters": {
                "type": "object",
                "properties": {
                    "phone": {"type": "string"},
                    "order_status": {"type": "string"},
                    "transcript": {"type": "string"},
                },
                "required": ["phone", "order_status"],
            },
            "mapping": {
                "phone": "call.from_number",
                "order_status": "variables.order_status",
                "transcript": "transcript",
            },
            "action": {"method": "POST", "url": f"{api_url}/follow-ups"},
        }
    )
    return doc


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextmanager
def example_store(folder: Path) -> Iterator[Path]:
    """The example store API (examples/order_api.py) on a free port, and a copy of the example
    agent and its functions in ``folder`` pointing at it: the agent file's path in the copy."""
    sys.path.insert(0, str(EXAMPLES))
    order_api = importlib.import_module("order_api")

    server = order_api.serve(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    shutil.copy(EXAMPLES / "store_agent.yaml", folder / "store_agent.yaml")
    (folder / "functions").mkdir()
    for f in (EXAMPLES / "functions").iterdir():
        (folder / "functions" / f.name).write_text(
            f.read_text().replace("http://127.0.0.1:8787", url)
        )
    try:
        yield folder / "store_agent.yaml"
    finally:
        server.shutdown()
        server.server_close()


#: What the example call prints, whichever framework runs it (the scripted LLM, the real API).
EXAMPLE_CALL = [
    "agent   Hi there, this is Sam from Acme. How can I help you today?",
    "caller  Hi, where is my order ORD-78234?",
    '  -> check_order_status {"order_id": "ORD-78234"}',
    '  <- {"order_id": "ORD-78234", "status": "shipped", "estimated_delivery": "2026-12-01", '
    '"carrier": "UPS"}',
    "agent   Your order ORD-78234 has shipped with UPS and should arrive on December 1st.",
    "caller  Great. Can I book a visit to the service desk on 2026-12-20 at 10:30 AM? My name is "
    "Priya Sharma.",
    '  -> book_appointment {"patient_name": "Priya Sharma", "preferred_date": "2026-12-20", '
    '"preferred_time": "10:30 AM"}',
    '  <- {"booking_id": "APT-1001", "confirmed": true, "patient_name": "Priya Sharma", '
    '"preferred_date": "2026-12-20", "preferred_time": "10:30 AM", "booked_by_agent": "acme-store"}',
    "agent   You're booked for December 20th at 10:30 AM, booking APT-1001.",
    "caller  Thanks, that's all. Bye!",
    "  -> end_call {}",
    '  <- {"ok": true, "call": "ending"}',
    "agent   Thanks for calling Acme, there. Goodbye!",
]
FILLERS = {
    "agent   Let me check the status of your order.",
    "agent   I'm booking that appointment for you now.",
}


def normalized(printed: str) -> list[str]:
    """The printed call, JSON after ``->``/``<-`` re-serialised alike, blank lines dropped."""
    out = []
    for line in printed.splitlines():
        if not line.strip():
            continue
        if line.startswith("  -> "):
            name, _, data = line[5:].partition(" ")
            line = f"  -> {name} {json.dumps(json.loads(data))}"
        elif line.startswith("  <- "):
            line = f"  <- {json.dumps(json.loads(line[5:]))}"
        out.append(line)
    return out
