"""Frames larger than a pipe's buffer (64 KiB) reach the child whole, both ways the supervisor
writes: the ``run`` frame (its arguments) and an HTTP answer. The supervisor writes a frame
straight to the pipe and keeps what did not fit until the pipe is writable again."""

from __future__ import annotations

import base64
import hashlib
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

CALM = Limits(timeout_s=30.0, cpu_s=5.0, memory_mb=128)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[PythonSandbox]:
    sb = PythonSandbox(warm_workers=0)
    await sb.start()
    yield sb
    await sb.aclose()


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
