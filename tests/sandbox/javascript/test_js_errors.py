"""What a failed job says, in the real JavaScript sandbox: the engine's note about the HTTP
request that explains the failure (decided from the supervisor's records, whatever the code
printed), and console lines with Deno's ``--allow-*`` advice rewritten as errors are."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from voicefn.egress import EgressDenied
from voicefn.sandbox.javascript import JavaScriptSandbox, Limits

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

LIMITS = Limits(timeout_s=120.0)  # roomy: the machine is busy; nothing here waits for it


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[JavaScriptSandbox]:
    sb = JavaScriptSandbox()
    await sb.start()
    yield sb
    await sb.aclose()


async def refusing(request: dict[str, Any]) -> dict[str, Any]:
    """An egress callback that refuses like the engine's policy (raising EgressDenied)."""
    raise EgressDenied("10.0.0.5 is a private address; allow it with --allow 10.0.0.0/8.")


async def connection_refused(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "connection: Could not connect to http://orders.example (Connection refused)"}


def fn(body: str) -> str:
    return f"async function probe(data) {{\n{body}\n}}\n"


async def test_an_axios_network_error_gets_the_engines_reason(sandbox: JavaScriptSandbox) -> None:
    out = await sandbox.run(
        fn('return (await axios.get("http://10.0.0.5/x?token=t0ps3cret&page=2")).data;'),
        "probe",
        {},
        egress=refusing,
        limits=LIMITS,
    )
    assert out.error == "exception"
    assert out.detail == (
        "AxiosError: Network Error; the engine saw: GET http://10.0.0.5/x?token=[redacted]&page=2 "
        "was refused by the egress policy: 10.0.0.5 is a private address; allow it with "
        "--allow 10.0.0.0/8."
    )
    [record] = out.http
    assert record["error"].startswith("refused by the egress policy: 10.0.0.5 is")
    assert out.stopped_by == "egress-policy"


async def test_a_failure_in_the_engine_is_named_once_for_fetch(sandbox: JavaScriptSandbox) -> None:
    out = await sandbox.run(
        fn('const r = await fetch("http://orders.example/o/1", { method: "POST", body: "{}" });'),
        "probe",
        {},
        egress=connection_refused,
        limits=LIMITS,
    )
    assert out.detail == (
        "TypeError: fetch failed; the engine saw: POST http://orders.example/o/1 failed in the "
        "engine: connection: Could not connect to http://orders.example (Connection refused)"
    )


async def test_the_last_failed_request_is_named_and_the_others_counted(
    sandbox: JavaScriptSandbox,
) -> None:
    code = fn(
        "for (const p of ['a', 'b']) { try { await fetch(`http://x.example/${p}`); } catch {} }\n"
        'await axios.get("http://x.example/c");'
    )
    out = await sandbox.run(code, "probe", {}, egress=connection_refused, limits=LIMITS)
    assert "; the engine saw: GET http://x.example/c failed in the engine" in out.detail
    assert out.detail.endswith("(2 more requests failed: see http)")
    assert [r["url"] for r in out.http] == [f"http://x.example/{p}" for p in "abc"]


async def test_a_caught_failure_and_a_returned_value_is_a_success(
    sandbox: JavaScriptSandbox,
) -> None:
    code = fn(
        'try { await axios.get("http://10.0.0.5/"); }\n'
        "catch (e) { return { status: 'error', message: e.message }; }"
    )
    out = await sandbox.run(code, "probe", {}, egress=refusing, limits=LIMITS)
    assert out.ok
    assert out.value == {"status": "error", "message": "Network Error"}
    assert out.detail == ""


async def test_an_error_unrelated_to_http_gets_no_note(sandbox: JavaScriptSandbox) -> None:
    """The request answered 200; the function's own bug is its own."""

    async def ok(request: dict[str, Any]) -> dict[str, Any]:
        return {"status": 200, "headers": [["content-type", "application/json"]], "body": "e30="}

    code = fn('await fetch("http://x.example/");\nnull.boom;')
    out = await sandbox.run(code, "probe", {}, egress=ok, limits=LIMITS)
    assert out.error == "exception"
    assert out.detail.startswith("TypeError: Cannot read properties of null")
    assert "the engine saw" not in out.detail


async def test_console_lines_get_the_sandbox_advice_not_denos_flags(
    sandbox: JavaScriptSandbox,
) -> None:
    code = fn(
        "try { await Deno.readTextFile('/etc/hostname'); }\n"
        "catch (e) { console.error(String(e)); console.log('read failed:', e.message); }\n"
        "return 1;"
    )
    out = await sandbox.run(code, "probe", {}, egress=refusing, limits=LIMITS)
    assert out.ok, out.detail
    messages = [line["message"] for line in out.logs if line["source"] == "function"]
    assert len(messages) == 2
    for message in messages:
        assert "--allow" not in message, message
        assert "a function has no file access in the sandbox" in message
    assert [line["level"] for line in out.logs] == ["error", "log"]
