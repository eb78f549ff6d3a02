"""Measure the Python sandbox (prints; asserts nothing). Not collected by pytest.

    .venv/bin/python tests/sandbox/python/bench_python_sandbox.py [iterations]

Prints: start() time, cold start of a worker, warm trivial call p50/p90, warm call with one
HTTP request (through egress to a 127.0.0.1 server) p50/p90.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from voicefn.sandbox.python import PythonSandbox

TRIVIAL = '''
async def hello(ctx: RunContext, name: str) -> dict:
    """Say hello."""
    return {"status": "success", "greeting": f"hello {name}"}
'''

ONE_REQUEST = '''
async def get_weather(ctx: RunContext, location: str, days: int = 1) -> dict:
    """One GET, like the seed's example."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.get(URL, params={"q": location, "days": days})
    return {"status": "success", "code": response.status_code, "data": response.json()}
'''


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"temp_c": 31}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


async def main(iterations: int) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/forecast"
    client = httpx.AsyncClient(trust_env=False)

    async def egress(request: dict[str, Any]) -> dict[str, Any]:
        response = await client.request(
            request["method"],
            request["url"],
            headers=request["headers"],
            content=base64.b64decode(request["body"]),
        )
        return {
            "status": response.status_code,
            "headers": [list(h) for h in response.headers.multi_items()],
            "body": base64.b64encode(response.content).decode(),
        }

    started = time.perf_counter()
    sandbox = PythonSandbox(warm_workers=1)
    await sandbox.start()
    print(f"start() (host probe + 1 warm worker): {(time.perf_counter() - started) * 1000:.0f} ms")

    colds = []
    for _ in range(5):
        cold = PythonSandbox(warm_workers=0)
        await cold.start()
        t = time.perf_counter()
        await cold.run(TRIVIAL, "hello", {"name": "x"}, {}, egress=egress)
        colds.append((time.perf_counter() - t) * 1000)
        await cold.aclose()
    print(
        f"cold call (bwrap + python + imports + warm-up + fork): p50 {statistics.median(colds):.0f}"
        f" ms, all {[round(c) for c in colds]}"
    )

    cases = [
        ("warm trivial", TRIVIAL, "hello", {"name": "x"}),
        (
            "warm 1 HTTP request",
            ONE_REQUEST.replace("URL", repr(url)),
            "get_weather",
            {"location": "Pune"},
        ),
    ]
    for label, code, entry, args in cases:
        await sandbox.run(code, entry, args, {}, egress=egress, tenant="bench")
        totals, runs, waits = [], [], []
        for _ in range(iterations):
            t = time.perf_counter()
            outcome = await sandbox.run(code, entry, args, {}, egress=egress, tenant="bench")
            totals.append((time.perf_counter() - t) * 1000)
            assert outcome.ok, outcome
            runs.append(outcome.timings["run_ms"])
            waits.append(outcome.timings["wait_ms"])
            await asyncio.sleep(0.01)  # a call every ~10 ms, not back to back
        print(
            f"{label}: p50 {statistics.median(totals):.2f} ms, p90 {_pct(totals, 0.9):.2f} ms, "
            f"min {min(totals):.2f} ms (run_ms p50 {statistics.median(runs):.2f}, wait_ms p50 "
            f"{statistics.median(waits):.2f}; n={iterations})"
        )
    await sandbox.aclose()
    await client.aclose()
    httpd.shutdown()
    httpd.server_close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
