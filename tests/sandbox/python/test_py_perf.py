"""The Python sandbox's fast paths (issue 10) keep their promises.

* Children forked ahead rehearse our own function while they wait (for a tenant making HTTP
  requests, one through ``ctx.http`` too, answered inside the child): nothing of it reaches the
  egress callback or the next invocation, whether calls come paced or back to back.
* Frames larger than a pipe's buffer (64 KiB) reach the child whole, both ways the supervisor
  writes: the ``run`` frame (its arguments) and an HTTP answer. The supervisor writes a frame
  straight to the pipe and keeps what did not fit until the pipe is writable again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pysandbox_support import HOST, SKIP_REASON, fn, refuse_all

from voicefn.sandbox.python import Limits, PythonSandbox

pytestmark = [
    pytest.mark.skipif(not HOST.full, reason=SKIP_REASON),
    pytest.mark.asyncio(loop_scope="module"),
]

CALM = Limits(timeout_s=30.0, cpu_s=5.0, memory_mb=64)
URL = "https://api.example.com/orders"
# a module-level counter: a fresh child starts it at 0, so every call must see 1
CODE = "SEEN = []\n" + fn(
    """
        SEEN.append(1)
        response = await ctx.http.get(URL, params={"order_id": order_id})
        return {"seen": len(SEEN), "order": response.json()}
        """,
    params=", order_id: str",
).replace("URL", repr(URL))


class RecordingEgress:
    def __init__(self) -> None:
        self.urls: list[str] = []

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.urls.append(request["url"])
        body = json.dumps({"status": "shipped"}).encode()
        return {
            "status": 200,
            "headers": [["content-type", "application/json"]],
            "body": base64.b64encode(body).decode(),
        }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[PythonSandbox]:
    sb = PythonSandbox(warm_workers=0)
    await sb.start()
    yield sb
    await sb.aclose()


@pytest.mark.parametrize("pause_s", [0.05, 0.0], ids=["paced", "back-to-back"])
async def test_rehearsals_never_reach_egress_or_the_next_call(
    sandbox: PythonSandbox, pause_s: float
) -> None:
    egress = RecordingEgress()
    tenant = f"rehearsal-{pause_s}"
    orders = [f"ORD-{i}" for i in range(6)]
    for order in orders:
        outcome = await sandbox.run(
            CODE, "f", {"order_id": order}, {}, egress=egress, limits=CALM, tenant=tenant
        )
        assert outcome.ok, outcome.detail
        assert outcome.value == {"seen": 1, "order": {"status": "shipped"}}
        assert len(outcome.http) == 1
        await asyncio.sleep(pause_s)
    assert egress.urls == [f"{URL}?order_id={order}" for order in orders]


async def test_a_run_frame_larger_than_the_pipe_arrives_whole(sandbox: PythonSandbox) -> None:
    blob = "".join(chr(0x20 + (i * 7919) % 0x5F) for i in range(300_000)) + "é✓"
    code = "import hashlib\n" + fn(
        "return {'n': len(blob), 'sha': hashlib.sha256(blob.encode()).hexdigest()}",
        params=", blob: str",
    )
    outcome = await sandbox.run(
        code, "f", {"blob": blob}, {}, egress=refuse_all, limits=CALM, tenant="frames"
    )
    assert outcome.ok, outcome.detail
    assert outcome.value == {
        "n": len(blob),
        "sha": hashlib.sha256(blob.encode()).hexdigest(),
    }
    # the next invocation of the tenant is unaffected
    after = await sandbox.run(
        fn("return {'status': 'next'}"), "f", {}, {}, egress=refuse_all, tenant="frames"
    )
    assert after.value == {"status": "next"}


async def test_an_http_answer_larger_than_the_pipe_arrives_whole(sandbox: PythonSandbox) -> None:
    body = bytes((i * 31 + 7) % 256 for i in range(1_500_000))

    async def egress(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": 200,
            "headers": [["content-type", "application/octet-stream"]],
            "body": base64.b64encode(body).decode(),
        }

    code = "import hashlib\n" + fn(
        """
        response = await ctx.http.get("https://api.example.com/blob")
        data = response.content
        return {"n": len(data), "sha": hashlib.sha256(data).hexdigest()}
        """
    )
    outcome = await sandbox.run(code, "f", {}, {}, egress=egress, limits=CALM, tenant="frames")
    assert outcome.ok, outcome.detail
    assert outcome.value == {"n": len(body), "sha": hashlib.sha256(body).hexdigest()}
