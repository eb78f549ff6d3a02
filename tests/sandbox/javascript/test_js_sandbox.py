"""Functional tests of the JavaScript sandbox: post-call functions with axios, moment, lodash."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jssandbox_egress import forward

from voicefn.sandbox.javascript import JavaScriptSandbox, Limits, Outcome, SandboxUnavailable

from servers import LocalServer

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[JavaScriptSandbox]:
    sb = JavaScriptSandbox()
    await sb.start()
    yield sb
    await sb.aclose()


async def httpx_egress(request: dict[str, Any]) -> dict[str, Any]:
    """A permissive egress for tests: performs the request with httpx (the engine's real
    egress applies its policy here)."""
    async with httpx.AsyncClient(timeout=5) as client:
        return await forward(client, request)


async def no_egress(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no network in this test"}


CALL_DATA = {
    "metadata": {
        "name": "Asha Rao",
        "phone": "+91 98450 00000",
        "call_ended_at": "2024-03-05T10:30:00Z",
    },
    "transcript": [
        {"role": "agent", "text": "Namaste, how can I help?"},
        {"role": "user", "text": "Please call me back on Friday."},
    ],
    "variables": {"summary": "wants a callback", "interested": True, "score": 7},
    "static": {"campaign": "spring-24"},
}

POST_CALL = """
async function postCall(data) {
  const next = moment(data.metadata.call_ended_at).utc().add(3, "days");
  console.log("updating CRM for", data.metadata.name);
  const res = await axios.post(`${data.static.crm}/echo`, {
    name: data.metadata.name,
    summary: _.get(data, "variables.summary"),
    ndoa: next.format("YYYY-MM-DD"),
  }, { headers: { "X-Campaign": data.static.campaign } });
  console.info("crm answered", res.status);
  return {
    status: res.status,
    echoed: res.data.json,
    header: res.data.headers["x-campaign"],
    ndoa: next.format("dddd, MMMM Do YYYY"),
    phone: _.get(data, "metadata.phone"),
    turns: data.transcript.length,
  };
}
"""


async def test_post_call_with_axios_moment_lodash(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    data = json.loads(json.dumps(CALL_DATA))
    data["static"]["crm"] = server.url
    outcome = await sandbox.run(POST_CALL, "postCall", data, egress=httpx_egress)
    assert outcome.ok, outcome
    assert outcome.value == {
        "status": 200,
        "echoed": {"name": "Asha Rao", "summary": "wants a callback", "ndoa": "2024-03-08"},
        "header": "spring-24",
        "ndoa": "Friday, March 8th 2024",
        "phone": "+91 98450 00000",
        "turns": 2,
    }
    assert outcome.logs == [
        {"level": "log", "message": "updating CRM for Asha Rao", "source": "function"},
        {"level": "info", "message": "crm answered 200", "source": "function"},
    ]
    assert len(outcome.http) == 1
    assert outcome.http[0]["method"] == "POST"
    assert outcome.http[0]["url"] == f"{server.url}/echo"
    assert outcome.http[0]["status"] == 200
    assert outcome.error is None
    assert outcome.stopped_by is None
    assert outcome.isolation == "isolated"
    assert not outcome.weakly_isolated
    assert set(outcome.timings) == {"wait_ms", "run_ms", "total_ms"}
    received = server.received[-1]
    assert received.method == "POST"
    assert received.json["name"] == "Asha Rao"


async def test_moment_formatting(sandbox: JavaScriptSandbox) -> None:
    code = """async function main(data) {
      const m = moment.utc(data.when);
      return [m.format("YYYY-MM-DD HH:mm"), m.add(1, "month").format("MMM D"), m.isValid(),
              moment.utc("2024-01-01").diff(moment.utc("2023-12-25"), "days")];
    }"""
    outcome = await sandbox.run(code, "main", {"when": "2024-01-31T09:05:00Z"}, egress=no_egress)
    assert outcome.value == ["2024-01-31 09:05", "Feb 29", True, 7]


async def test_lodash(sandbox: JavaScriptSandbox) -> None:
    code = """async function main(data) {
      return {
        get: _.get(data, "a.b[1].c"),
        missing: _.get(data, "x.y", "default"),
        groups: _.mapValues(_.groupBy(data.calls, "outcome"), (v) => v.length),
        sum: _.sumBy(data.calls, "secs"),
        chunk: _.chunk([1, 2, 3, 4, 5], 2),
      };
    }"""
    data = {
        "a": {"b": [{}, {"c": "deep"}]},
        "calls": [
            {"outcome": "won", "secs": 30},
            {"outcome": "lost", "secs": 12},
            {"outcome": "won", "secs": 8},
        ],
    }
    outcome = await sandbox.run(code, "main", data, egress=no_egress)
    assert outcome.value == {
        "get": "deep",
        "missing": "default",
        "groups": {"won": 2, "lost": 1},
        "sum": 50,
        "chunk": [[1, 2], [3, 4], [5]],
    }


async def test_data_passes_through_unchanged(sandbox: JavaScriptSandbox) -> None:
    data = {
        "unicode": "naïve café ✓ 日本",
        "n": [1, 2.5, -3, None, True],
        "nested": {"x": {"y": {}}},
    }
    outcome = await sandbox.run(
        "async function echo(d) { return d }", "echo", data, egress=no_egress
    )
    assert outcome.ok
    assert outcome.value == data


async def test_a_lone_surrogate_in_data_reaches_the_function_and_comes_back(
    sandbox: JavaScriptSandbox,
) -> None:
    """Text cut in the middle of a character (an LLM's or a caller's) cannot be UTF-8: the frame
    escapes it, and the function gets, and returns, the very same string."""
    code = "async function main(d) { return {s: d.s, n: d.s.length, code: d.s.charCodeAt(0)} }"
    outcome = await sandbox.run(code, "main", {"s": "\ud800x"}, egress=no_egress)
    assert outcome.ok, outcome
    assert outcome.value == {"s": "\ud800x", "n": 2, "code": 0xD800}


async def test_logs_are_captured_with_levels(sandbox: JavaScriptSandbox) -> None:
    code = """async function main() {
      console.log("plain", 1, {a: [1, 2]});
      console.info("info");
      console.warn("careful");
      console.error(new Error("bad"));
      console.debug("dbg");
      return null;
    }"""
    outcome = await sandbox.run(code, "main", {}, egress=no_egress)
    assert outcome.ok
    assert outcome.value is None
    assert [entry["level"] for entry in outcome.logs] == ["log", "info", "warn", "error", "debug"]
    assert outcome.logs[0]["message"] == "plain 1 { a: [ 1, 2 ] }"
    assert outcome.logs[3]["message"].startswith("Error: bad")


async def test_log_lines_are_capped(sandbox: JavaScriptSandbox) -> None:
    code = (
        "async function main() { for (let i = 0; i < 5000; i++) console.log('line', i); return 1 }"
    )
    outcome = await sandbox.run(code, "main", {}, egress=no_egress, limits=Limits(max_log_lines=10))
    assert outcome.ok
    assert outcome.value == 1
    assert len(outcome.logs) == 11
    assert outcome.logs[9]["message"] == "line 9"
    assert "dropped" in outcome.logs[10]["message"]


async def test_thrown_error_is_an_exception_with_message(sandbox: JavaScriptSandbox) -> None:
    code = "async function main() { throw new TypeError('customer is missing') }"
    outcome = await sandbox.run(code, "main", {}, egress=no_egress)
    assert not outcome.ok
    assert outcome.error == "exception"
    assert outcome.detail == "TypeError: customer is missing"


async def test_axios_http_error_is_an_exception(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    code = "async function main(d) { await axios.get(d.url + '/status/404'); return 1 }"
    outcome = await sandbox.run(code, "main", {"url": server.url}, egress=httpx_egress)
    assert outcome.error == "exception"
    assert "404" in outcome.detail
    assert outcome.http[0]["status"] == 404


async def test_fetch_get_and_response_api(sandbox: JavaScriptSandbox, server: LocalServer) -> None:
    code = """async function main(d) {
      const r = await fetch(d.url + "/text");
      const e = await fetch(d.url + "/empty", {method: "DELETE"});
      return {status: r.status, ok: r.ok, type: r.headers.get("content-type"),
              text: await r.text(), url: r.url, empty: e.status};
    }"""
    outcome = await sandbox.run(code, "main", {"url": server.url}, egress=httpx_egress)
    assert outcome.value == {
        "status": 200,
        "ok": True,
        "type": "text/plain; charset=utf-8",
        "text": "plain words, naïve café",
        "url": f"{server.url}/text",
        "empty": 204,
    }


async def test_non_serializable_return_is_invalid_output(sandbox: JavaScriptSandbox) -> None:
    for body in ("return 10n", "const a = {}; a.self = a; return a", "return () => 1"):
        outcome = await sandbox.run(
            f"async function main() {{ {body} }}", "main", {}, egress=no_egress
        )
        assert outcome.error == "invalid_output", (body, outcome)
        assert not outcome.ok


async def test_undefined_return_is_null(sandbox: JavaScriptSandbox) -> None:
    outcome = await sandbox.run("async function main() {}", "main", {}, egress=no_egress)
    assert outcome.ok
    assert outcome.value is None


async def test_missing_entrypoint_and_syntax_error(sandbox: JavaScriptSandbox) -> None:
    outcome = await sandbox.run("async function other() {}", "main", {}, egress=no_egress)
    assert outcome.error == "exception"
    assert "main" in outcome.detail
    outcome = await sandbox.run("async function main( {", "main", {}, egress=no_egress)
    assert outcome.error == "exception"
    assert outcome.detail.startswith("SyntaxError")
    outcome = await sandbox.run("function x(){}", "not-an-identifier", {}, egress=no_egress)
    assert outcome.error == "exception"
    assert "identifier" in outcome.detail


async def test_other_function_shapes(sandbox: JavaScriptSandbox) -> None:
    shapes = [
        "const main = async (d) => d.x + 1;",
        "function main(d) { return d.x + 1 }",
        "module.exports.main = async (d) => d.x + 1;",
        "export async function main(d) { return d.x + 1 }",
        "export default async function (d) { return d.x + 1 }",
    ]
    for code in shapes:
        outcome = await sandbox.run(code, "main", {"x": 1}, egress=no_egress)
        assert outcome.ok, (code, outcome)
        assert outcome.value == 2, (code, outcome)


async def test_concurrent_jobs_of_one_tenant_each_get_their_result(
    sandbox: JavaScriptSandbox,
) -> None:
    """They run at once (test_js_parallel.py proves it), each answered with its own result."""
    code = "async function main(d) { await new Promise(r => setTimeout(r, 100)); return d.i }"
    outcomes = await asyncio.gather(
        *(sandbox.run(code, "main", {"i": i}, egress=no_egress, tenant="queue") for i in range(4))
    )
    assert [o.value for o in outcomes] == [0, 1, 2, 3]


async def test_bad_egress_response_fails_the_request_only(sandbox: JavaScriptSandbox) -> None:
    async def broken(request: dict[str, Any]) -> dict[str, Any]:
        return {"status": "two hundred"}

    code = """async function main() {
      try { await fetch("https://api.example.com/"); } catch (e) { return String(e) }
    }"""
    outcome = await sandbox.run(code, "main", {}, egress=broken)
    assert outcome.ok
    assert "bad status" in outcome.value


async def test_egress_exception_is_not_leaked(sandbox: JavaScriptSandbox) -> None:
    async def failing(request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("internal secret detail")

    code = 'async function main() { try { await axios.get("https://api.example.com/") } catch (e) { return e.message } }'
    outcome = await sandbox.run(code, "main", {}, egress=failing)
    assert outcome.ok
    assert "secret" not in outcome.value
    assert outcome.http[0]["error"] == "the request failed (RuntimeError)"


async def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=8)


async def test_missing_bwrap_raises_sandbox_unavailable() -> None:
    sb = JavaScriptSandbox(bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable) as info:
        await sb.start()
    assert "bubblewrap" in str(info.value)
    assert 'mode="unsafe-process"' in str(info.value)
    await sb.aclose()


async def test_missing_deno_raises_sandbox_unavailable() -> None:
    sb = JavaScriptSandbox(deno="/nonexistent/deno")
    with pytest.raises(SandboxUnavailable, match="deno"):
        await sb.start()
    await sb.aclose()


async def test_unsafe_process_mode_is_marked_weak(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="voicefn.sandbox.javascript")
    async with JavaScriptSandbox(mode="unsafe-process") as sb:
        code = """async function main(d) {
          const r = await axios.get(d.url + "/echo");
          let read;
          try { Deno.readTextFileSync("/etc/passwd"); read = "read!"; } catch (e) { read = e.name }
          return {status: r.status, read};
        }"""
        outcome: Outcome = await sb.run(code, "main", {"url": server.url}, egress=httpx_egress)
    assert outcome.ok, outcome
    assert outcome.value == {"status": 200, "read": "NotCapable"}
    assert outcome.isolation == "weak"
    assert outcome.weakly_isolated
    # The start warning says plainly what the mode does not give (issue 7 section 6).
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "NO isolation between tenants" in warning
    assert "/proc/<pid>/mem" in warning
    assert "more than one workspace" in warning


async def test_unavailable_error_warns_about_unsafe_process() -> None:
    sb = JavaScriptSandbox(bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable) as info:
        await sb.start()
    await sb.aclose()
    assert "NO isolation between tenants" in str(info.value)
    assert "/nonexistent/bwrap" in str(info.value)


async def test_http_record_drops_credentials(sandbox: JavaScriptSandbox) -> None:
    seen: list[dict[str, Any]] = []

    async def recording(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"status": 200, "headers": [["content-type", "text/plain"]], "body": ""}

    code = "async function main() { return (await fetch('https://user:pw@api.example.com/x?q=1')).status }"
    outcome = await sandbox.run(code, "main", {}, egress=recording)
    assert outcome.value == 200
    assert outcome.http[0]["url"] == "https://api.example.com/x?q=1"
    # The egress callback itself gets the request as the function made it, with a deadline.
    assert seen[0]["url"].startswith("https://user:pw@api.example.com/")
    assert 0 < seen[0]["timeout"] <= 10
