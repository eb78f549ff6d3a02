"""Measures (never asserts) the JavaScript sandbox's latencies; run with ``-s`` to see them:
cold start of a tenant process, a warm trivial job, a warm job with one axios request."""

from __future__ import annotations

import asyncio
import base64
import shutil
import statistics
from typing import Any

import httpx
import pytest

from voicefn.sandbox.javascript import JavaScriptSandbox

from servers import LocalServer

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


async def test_measure_latencies(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    async with httpx.AsyncClient() as client:

        async def egress(request: dict[str, Any]) -> dict[str, Any]:
            response = await client.request(
                request["method"],
                request["url"],
                headers=request["headers"],
                content=base64.b64decode(request["body"]),
            )
            return {
                "status": response.status_code,
                "headers": [[k, v] for k, v in response.headers.items()],
                "body": base64.b64encode(response.content).decode(),
            }

        async with JavaScriptSandbox() as sb:
            cold = []
            for i in range(3):
                outcome = await sb.run(
                    "async function main() { return 1 }", "main", {}, egress=egress, tenant=f"c{i}"
                )
                assert outcome.ok
                cold.append(outcome.timings["wait_ms"])
            results = {"cold start (spawn -> ready)": cold}
            jobs = {
                "warm trivial job": "async function main(d) { return d.x }",
                "warm job, one axios GET": (
                    "async function main(d) { return (await axios.get(d.url + '/echo')).status }"
                ),
            }
            for label, code in jobs.items():
                totals = []
                for _ in range(15):
                    await asyncio.sleep(0.25)  # let the tenant's spare Worker warm up
                    outcome = await sb.run(code, "main", {"x": 1, "url": server.url}, egress=egress)
                    assert outcome.ok, outcome
                    totals.append(outcome.timings["total_ms"])
                results[label] = totals[2:]
    with capsys.disabled():
        print()
        for label, values in results.items():
            print(f"  js sandbox {label:30s} p50 {statistics.median(values):7.2f} ms")
