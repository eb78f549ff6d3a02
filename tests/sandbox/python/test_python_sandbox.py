"""The Python sandbox doing its job: the seed's functions, HTTP through egress, logs, tenants."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio
from pysandbox_support import HOST, SKIP_REASON, HttpxEgress, fn, refuse_all

from voicefn.sandbox.python import (
    Limits,
    Outcome,
    PythonSandbox,
    SandboxUnavailable,
    check_host,
)

pytestmark = [
    pytest.mark.skipif(not HOST.full, reason=SKIP_REASON),
    pytest.mark.asyncio(loop_scope="module"),
]

# The seed's example (seeds/003), unchanged: plain httpx.AsyncClient and a global logger.
SEED_GET_WEATHER = (Path(__file__).parents[1] / "seed_get_weather.py.txt").read_text()


class _WeatherHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    seen: list[dict[str, list[str]]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self.seen.append(query)
        days = int(query["days"][0])
        payload = {
            "location": {"name": query["q"][0].title()},
            "forecast": {
                "forecastday": [
                    {
                        "date": f"2025-01-0{i + 1}",
                        "day": {"condition": {"text": "Sunny"}, "maxtemp_c": 30 + i},
                    }
                    for i in range(days)
                ]
            },
        }
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def weather_api() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    seen: list[dict[str, list[str]]] = []
    handler = type("Handler", (_WeatherHandler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


class RewritingEgress(HttpxEgress):
    """Sends https://api.weatherapi.com to the local fake (a test's stand-in for DNS)."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        url = request["url"].replace("https://api.weatherapi.com", self.base)
        return await super().__call__({**request, "url": url})


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sandbox() -> AsyncIterator[PythonSandbox]:
    sb = PythonSandbox(warm_workers=2)
    await sb.start()
    yield sb
    await sb.aclose()


@pytest_asyncio.fixture(loop_scope="module")
async def permissive() -> AsyncIterator[HttpxEgress]:
    egress = HttpxEgress()
    yield egress
    await egress.aclose()


# ------------------------------------------------------------------------------ the seed


async def test_the_seed_get_weather_runs_unchanged_through_egress(
    sandbox: PythonSandbox, weather_api: tuple[str, list[dict[str, list[str]]]]
) -> None:
    base, seen = weather_api
    egress = RewritingEgress(base)
    try:
        outcome = await sandbox.run(
            SEED_GET_WEATHER,
            "get_weather",
            {"location": "pune", "days": 2},
            {"call": {"call_sid": "CA1"}, "variables": {}},
            egress=egress,
            tenant="agent-1",
        )
    finally:
        await egress.aclose()
    assert outcome.ok, outcome
    assert outcome.value == {
        "status": "success",
        "location": "Pune",
        "forecast": [
            {"date": "2025-01-01", "condition": "Sunny", "max_temp": 30},
            {"date": "2025-01-02", "condition": "Sunny", "max_temp": 31},
        ],
    }
    assert seen == [{"key": ["YOUR_API_KEY"], "q": ["pune"], "days": ["2"]}]
    assert len(outcome.http) == 1
    record = outcome.http[0]
    assert record["method"] == "GET"
    assert record["url"].startswith("https://api.weatherapi.com/v1/forecast.json?")
    assert record["status"] == 200
    assert record["ms"] >= 0
    assert outcome.isolation == "isolated"
    assert set(outcome.timings) >= {"wait_ms", "run_ms", "total_ms"}
    assert outcome.error is None
    assert outcome.stopped_by is None


async def test_the_seed_error_path_logs_through_the_global_logger(sandbox: PythonSandbox) -> None:
    outcome = await sandbox.run(
        SEED_GET_WEATHER, "get_weather", {"location": "Pune"}, {}, egress=refuse_all
    )
    assert outcome.ok
    assert outcome.value == {"status": "error", "message": "Failed to fetch weather data"}
    assert [(log["level"], log["source"]) for log in outcome.logs] == [("error", "logger")]
    assert "Weather API request failed: no egress in this test" in outcome.logs[0]["message"]
    assert len(outcome.http) == 1
    record = outcome.http[0]
    assert (record["method"], record["error"]) == ("GET", "no egress in this test")
    assert record["url"].startswith("https://api.weatherapi.com/v1/forecast.json?")
    assert record["ms"] >= 0
    bad_days = await sandbox.run(
        SEED_GET_WEATHER, "get_weather", {"location": "Pune", "days": 9}, {}, egress=refuse_all
    )
    assert bad_days.value == {"status": "error", "message": "Days must be between 1 and 7"}


# ---------------------------------------------------------------------- ctx, logs, http


async def test_arguments_context_logs_and_ctx_http(
    sandbox: PythonSandbox, permissive: HttpxEgress, server: Any
) -> None:
    code = fn(
        f"""
        ctx.logger.debug("debug %d", n)
        logger.info("info %s", p)
        logger.warning("careful")
        print("printed", ctx.call.call_sid, ctx.call["from_number"])
        import sys
        print("to stderr", file=sys.stderr)
        response = await ctx.http.post(
            "{server.url}/echo?x=1", json={{"p": p, "vars": ctx.variables}}, headers={{"X-T": "1"}}
        )
        echo = response.json()
        return {{
            "status": "success",
            "p": p,
            "n": n,
            "call": ctx.call.to_dict(),
            "echo_json": echo["json"],
            "echo_header": echo["headers"].get("X-T"),
            "echo_query": echo["query"],
        }}
        """,
        params=", p: str, n: int = 7",
    )
    context = {
        "variables": {"customer_name": "Bruce", "tier": "gold"},
        "call": {
            "agent_id": "ag_1",
            "call_sid": "CA9",
            "execution_id": "ex_1",
            "from_number": "+15550001",
            "to_number": "+15550002",
        },
    }
    outcome = await sandbox.run(code, "f", {"p": "hi"}, context, egress=permissive)
    assert outcome.ok, outcome
    assert outcome.value == {
        "status": "success",
        "p": "hi",
        "n": 7,
        "call": context["call"],
        "echo_json": {"p": "hi", "vars": {"customer_name": "Bruce", "tier": "gold"}},
        "echo_header": "1",
        "echo_query": {"x": ["1"]},
    }
    assert [(log["level"], log["message"], log["source"]) for log in outcome.logs] == [
        ("debug", "debug 7", "logger"),
        ("info", "info hi", "logger"),
        ("warning", "careful", "logger"),
        ("info", "printed CA9 +15550001", "print"),
        ("error", "to stderr", "stderr"),
    ]
    assert all(isinstance(log["time"], float) for log in outcome.logs)
    assert outcome.http[0]["status"] == 200
    assert outcome.http[0]["method"] == "POST"
    assert server.received[0].json == {
        "p": "hi",
        "vars": {"customer_name": "Bruce", "tier": "gold"},
    }


async def test_sync_httpx_goes_through_egress_too(
    sandbox: PythonSandbox, permissive: HttpxEgress, server: Any
) -> None:
    code = fn(
        f"""
        r = httpx.get("{server.url}/status/201")
        import asyncio
        t = await asyncio.to_thread(httpx.get, "{server.url}/text")
        return {{"status": r.status_code, "text": t.text}}
        """
    )
    outcome = await sandbox.run(code, "f", {}, {}, egress=permissive)
    assert outcome.ok, outcome
    assert outcome.value == {"status": 201, "text": "plain words, naïve café"}
    assert [h["status"] for h in outcome.http] == [201, 200]


async def test_encoded_responses_are_decoded_once(sandbox: PythonSandbox) -> None:
    async def gzip_claiming_egress(request: dict[str, Any]) -> dict[str, Any]:
        # like httpx's response.content: already decoded, headers still say gzip
        body = json.dumps({"ok": True}).encode()
        return {
            "status": 200,
            "headers": [
                ["content-type", "application/json"],
                ["content-encoding", "gzip"],
                ["content-length", str(len(gzip.compress(body)))],
            ],
            "body": base64.b64encode(body).decode(),
        }

    code = fn("r = await ctx.http.get('https://api.example.com/')\nreturn {'status': r.json()}")
    outcome = await sandbox.run(code, "f", {}, {}, egress=gzip_claiming_egress)
    assert outcome.ok, outcome
    assert outcome.value == {"status": {"ok": True}}


async def test_egress_callback_failures_reach_the_function_as_request_errors(
    sandbox: PythonSandbox,
) -> None:
    async def broken(request: dict[str, Any]) -> dict[str, Any]:
        if request["url"].endswith("/raise"):
            raise RuntimeError("secret internal detail")
        if request["url"].endswith("/garbage"):
            return {"status": "two hundred"}
        await asyncio.sleep(5)
        return {"status": 200, "headers": [], "body": ""}

    code = fn(
        """
        out = []
        for path in ("raise", "garbage", "slow"):
            try:
                await ctx.http.get("https://api.example.com/" + path, timeout=0.3)
                out.append("ok")
            except httpx.RequestError as exc:
                out.append(f"{type(exc).__name__}: {exc}")
        return {"status": out}
        """
    )
    outcome = await sandbox.run(code, "f", {}, {}, egress=broken)
    assert outcome.ok, outcome
    assert outcome.value["status"] == [
        "EgressRefused: the request failed (RuntimeError)",
        "EgressRefused: the egress callback returned a bad status",
        "ReadTimeout: no response in time",
    ]
    assert "secret internal detail" not in str(outcome)


async def test_log_lines_are_bounded(sandbox: PythonSandbox) -> None:
    code = fn("for i in range(500):\n    print('line', i)\nreturn {'status': 'ok'}")
    outcome = await sandbox.run(
        code, "f", {}, {}, egress=refuse_all, limits=Limits(max_log_lines=10)
    )
    assert outcome.ok
    assert [log["message"] for log in outcome.logs[:10]] == [f"line {i}" for i in range(10)]
    assert len(outcome.logs) <= 12
    assert "dropped" in outcome.logs[-1]["message"]


async def test_results_over_max_output_bytes_are_refused(sandbox: PythonSandbox) -> None:
    code = fn("return {'status': 'x' * 5000}")
    outcome = await sandbox.run(
        code, "f", {}, {}, egress=refuse_all, limits=Limits(max_output_bytes=1000)
    )
    assert outcome.error == "invalid_output"
    assert "1000" in outcome.detail


async def test_code_errors_are_exceptions_with_lines(sandbox: PythonSandbox) -> None:
    syntax = await sandbox.run("async def f(ctx):\n    return {", "f", {}, {}, egress=refuse_all)
    assert syntax.error == "exception"
    assert syntax.detail.startswith("SyntaxError:")
    assert "(line 2)" in syntax.detail
    missing = await sandbox.run(fn("return {}"), "nope", {}, {}, egress=refuse_all)
    assert missing.error == "exception"
    assert "nope" in missing.detail
    bad_args = await sandbox.run(fn("return {}"), "f", {"zzz": 1}, {}, egress=refuse_all)
    assert bad_args.error == "exception"
    assert "TypeError" in bad_args.detail
    assert "zzz" in bad_args.detail


async def test_a_plain_def_and_extra_globals_work(sandbox: PythonSandbox) -> None:
    code = (
        "import json\nTABLE = {'a': 1}\n\n"
        "def lookup(ctx: RunContext, key: str) -> dict:\n"
        "    return {'status': 'success', 'value': TABLE.get(key), 'ctx': type(ctx).__name__}\n"
    )
    outcome = await sandbox.run(code, "lookup", {"key": "a"}, {}, egress=refuse_all)
    assert outcome.value == {"status": "success", "value": 1, "ctx": "RunContext"}


# ------------------------------------------------------------------- warm pool, tenants


async def test_warm_calls_record_their_timings(sandbox: PythonSandbox) -> None:
    code = fn("return {'status': 'success'}")
    outcomes = [
        await sandbox.run(code, "f", {}, {}, egress=refuse_all, tenant="timed") for _ in range(5)
    ]
    assert all(o.ok for o in outcomes)
    for o in outcomes:
        assert set(o.timings) >= {"wait_ms", "run_ms", "total_ms"}
        assert o.timings["total_ms"] >= o.timings["run_ms"] >= 0
    assert all("cold_start_ms" not in o.timings for o in outcomes[1:])  # the same warm worker


async def test_concurrent_invocations_across_tenants(sandbox: PythonSandbox) -> None:
    code = fn(
        "import asyncio\nawait asyncio.sleep(0.3)\n"
        "return {'status': 'success', 'tenant': ctx.variables['tenant']}"
    )
    tenants = ["a", "b", "c", "a", "b", "c"]
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(
            sandbox.run(code, "f", {}, {"variables": {"tenant": t}}, egress=refuse_all, tenant=t)
            for t in tenants
        )
    )
    elapsed = time.perf_counter() - started
    assert [o.value["tenant"] for o in outcomes] == tenants
    assert elapsed < 6 * 0.3  # they ran side by side


async def test_a_timeout_does_not_break_another_tenants_next_call(
    sandbox: PythonSandbox,
) -> None:
    quick = fn("return {'status': 'success'}")
    warm = await sandbox.run(quick, "f", {}, {}, egress=refuse_all, tenant="good")
    assert warm.ok
    sleeper = asyncio.ensure_future(
        sandbox.run(
            fn("import time\ntime.sleep(100)"),
            "f",
            {},
            {},
            egress=refuse_all,
            limits=Limits(timeout_s=0.5),
            tenant="bad",
        )
    )
    during = await sandbox.run(quick, "f", {}, {}, egress=refuse_all, tenant="good")
    timed_out = await sleeper
    after = await sandbox.run(quick, "f", {}, {}, egress=refuse_all, tenant="good")
    assert timed_out.error == "timeout"
    assert timed_out.stopped_by == "wall-clock"
    assert during.ok
    assert after.ok
    assert "cold_start_ms" not in during.timings
    assert "cold_start_ms" not in after.timings
    again = await sandbox.run(quick, "f", {}, {}, egress=refuse_all, tenant="bad")
    assert again.ok  # the timed-out tenant gets a fresh worker


# ------------------------------------------------------------------- modes and the host


async def test_check_host_reports_a_full_host() -> None:
    support = await asyncio.to_thread(check_host)
    assert support.full
    assert support.unprivileged_uid not in (None, 0)
    text = support.describe()
    assert "bubblewrap" in text
    assert "seccomp" in text
    assert "full" in text


async def test_isolated_mode_refuses_to_start_without_bubblewrap() -> None:
    sandbox = PythonSandbox(bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable) as info:
        await sandbox.start()
    message = str(info.value)
    assert "bubblewrap" in message
    assert "/nonexistent/bwrap" in message
    assert "apt-get install bubblewrap" in message
    assert 'mode="unsafe-process"' in message
    assert "WEAKER" in message
    assert "NO isolation between tenants" in message
    outcome = await sandbox.run(fn("return {}"), "f", {}, {}, egress=refuse_all)
    assert outcome.error == "unavailable"
    assert "bubblewrap" in outcome.detail
    await sandbox.aclose()


async def test_isolated_mode_refuses_without_python3_seccomp() -> None:
    sandbox = PythonSandbox(python="/usr/bin/python3-does-not-exist")
    with pytest.raises(SandboxUnavailable, match=r"seccomp|does not exist"):
        await sandbox.start()


async def test_unsafe_process_mode_runs_but_says_it_is_weak() -> None:
    sandbox = PythonSandbox(mode="unsafe-process", bwrap="/nonexistent/bwrap", warm_workers=1)
    await sandbox.start()
    try:
        outcome = await sandbox.run(
            fn("import os\nreturn {'status': 'success', 'uid': os.getuid()}"),
            "f",
            {},
            {},
            egress=refuse_all,
        )
        fork = await sandbox.run(fn("import os\nos.fork()"), "f", {}, {}, egress=refuse_all)
    finally:
        await sandbox.aclose()
    assert outcome.ok
    assert outcome.value["uid"] not in (0, None)  # still dropped to an unprivileged uid
    assert outcome.isolation == "weak"
    assert outcome.weakly_isolated
    assert "WEAKLY isolated" in outcome.detail
    assert outcome.logs[0]["level"] == "warning"
    assert "WEAKLY isolated" in outcome.logs[0]["message"]
    assert "NO isolation between tenants" in outcome.logs[0]["message"]
    assert "/proc/<pid>/mem" in outcome.logs[0]["message"]
    assert fork.stopped_by == "seccomp"  # seccomp and rlimits still apply
    assert "WEAKLY isolated" in fork.detail


async def test_a_closed_sandbox_reports_unavailable() -> None:
    sandbox = PythonSandbox(warm_workers=0)
    await sandbox.start()
    await sandbox.aclose()
    outcome = await sandbox.run(fn("return {}"), "f", {}, {}, egress=refuse_all)
    assert outcome.error == "unavailable"


async def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=1)
    with pytest.raises(ValueError, match="cpu_s"):
        Limits(cpu_s=float("nan"))


async def test_run_refuses_non_json_arguments(sandbox: PythonSandbox) -> None:
    with pytest.raises(TypeError):
        await sandbox.run(fn("return {}"), "f", {"x": object()}, {}, egress=refuse_all)


async def test_outcome_is_a_plain_dataclass() -> None:
    outcome = Outcome(ok=True, value={"status": "x"}, error=None, detail="")
    assert outcome.logs == []
    assert outcome.http == []
    assert outcome.timings == {}
    assert not outcome.weakly_isolated
