"""The zygote runs one fake invocation end to end before it forks anything.

Every import, lazily built table and code path a typical function touches (httpx, asyncio,
logging, json, the egress transport, error details) is then ready in each forked child.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

from .channel import Channel
from .egress import use_channel
from .runtime import invoke

WARMUP_CODE = '''
import json, re, math, datetime, random, hashlib, base64, uuid, urllib.parse

async def warm_up(ctx: RunContext, p: str, n: int = 1) -> dict:
    """Exercise what a typical function uses, before forking."""
    logger.info("warming up %s", p)
    print("warm", n, ctx.call.call_sid, ctx.variables)
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.get("https://warmup.invalid/x", params={"q": p, "days": n})
        data = response.json()
        if response.status_code != 200:
            raise httpx.RequestError("unexpected")
    second = await ctx.http.post("https://warmup.invalid/y", json={"a": [1, 2.5, None]})
    third = httpx.get("https://warmup.invalid/z")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        logger.exception("handled: %s", exc)
    return {"status": "success", "data": data, "codes": [second.status_code, third.status_code]}
'''


class WarmupChannel(Channel):
    """Answers everything itself: lets the zygote run a whole invocation before forking."""

    def __init__(self) -> None:
        super().__init__(-1, -1)
        self.sent: list[dict[str, Any]] = []

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def send_raw(self, payload: bytes) -> None:
        self.sent.append(json.loads(payload))

    def _answer(self) -> dict[str, Any]:
        body = base64.b64encode(b'{"ok": true, "items": [1, 2, 3]}').decode()
        return {"status": 200, "headers": [["content-type", "application/json"]], "body": body}

    async def request(self, msg: dict[str, Any], wait_s: float | None) -> dict[str, Any]:
        self.send(msg)
        await asyncio.sleep(0)
        return self._answer()

    def request_blocking(self, msg: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        self.send(msg)
        return self._answer()


def warm_up() -> None:
    run = {
        "code": WARMUP_CODE,
        "entrypoint": "warm_up",
        "arguments": {"p": "x", "n": 2},
        "context": {"variables": {"k": "v"}, "call": {"call_sid": "CA0"}},
        "limits": {"max_output_bytes": 1 << 20, "max_log_lines": 200},
    }
    saved = sys.stdout, sys.stderr
    channel = WarmupChannel()
    try:
        for _ in range(2):
            asyncio.run(invoke(channel, run))
    finally:
        sys.stdout, sys.stderr = saved
    result = channel.sent[-1]
    if result.get("t") != "result":
        raise RuntimeError(f"warm-up failed: {result}")
    use_channel(None)
    json.loads('{"a": [1, 2.0, "x", null, true]}')


REHEARSAL = {
    "code": "async def rehearse(ctx: RunContext, n: int) -> dict:\n"
    "    logger.debug('n=%s', n)\n"
    "    return {'status': 'success', 'n': n, 'call': ctx.call.call_sid}\n",
    "entrypoint": "rehearse",
    "arguments": {"n": 1},
    "context": {"variables": {"k": "v"}, "call": {"call_sid": "CA0"}},
    "limits": {"max_output_bytes": 1 << 20, "max_log_lines": 200},
}
#: for a tenant whose functions make HTTP requests: one through ``ctx.http`` as well
REHEARSAL_HTTP = {
    **REHEARSAL,
    "code": "async def rehearse(ctx: RunContext, n: int) -> dict:\n"
    "    logger.debug('n=%s', n)\n"
    "    r = await ctx.http.get('https://warmup.invalid/r', params={'n': n})\n"
    "    return {'status': 'success', 'n': n, 'data': r.json(), 'call': ctx.call.call_sid}\n",
}


def rehearse(loop: asyncio.AbstractEventLoop, http: bool = False) -> None:
    """In a pre-forked child, while it waits for its invocation: run our own trivial function
    once on the child's loop, so the copy-on-write faults of the paths every invocation takes
    (the loop, the channel, the logger, compiling, the result) happen before the invocation
    instead of during it (with ``http``, an ``httpx`` request's too, answered by the rehearsal's
    own channel: nothing leaves the child). Only this trusted code runs;
    ``sys.stdout``/``sys.stderr`` and the egress channel are put back."""
    saved = sys.stdout, sys.stderr
    channel = WarmupChannel()
    try:
        loop.run_until_complete(invoke(channel, REHEARSAL_HTTP if http else REHEARSAL))
    finally:
        sys.stdout, sys.stderr = saved
        use_channel(None)
    json.loads(b'{"t":"run","code":"x","arguments":{"a":[1,2.5]}}')
