"""A JavaScript function whose HTTP request failed says what the engine saw, end to end.

The real sandbox, the Executor's real egress policy, real loopback servers: a request the
policy refuses (loopback, no --allow-private-network), a server that never answers (the
request's own timeout is short, the job's limit roomy), a 502 with an HTML body; each with
axios and with fetch. The detail (developer) names the request and the engine's reason; the
content the LLM reads is the short form, without URLs or the operator's flags.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from voicefn import Executor, load_function
from voicefn.sandbox.python import check_host

from servers import RawRequest, raw_response, running_raw_server

pytestmark = pytest.mark.skipif(not check_host().full, reason="needs bubblewrap + user namespaces")

SETTINGS = 'const __voicefn__ = { phase: "in_call", timeout_ms: 120000 };'

AXIOS = {
    "plain": "const r = await axios.get(URL);\n  return r.data;",
    "timeout": "const r = await axios.get(URL, { timeout: 1500 });\n  return r.data;",
}
FETCH = {
    "plain": "const r = await fetch(URL);\n  return await r.json();",
    "timeout": (
        "const r = await fetch(URL, { signal: AbortSignal.timeout(1500) });\n"
        "  return await r.json();"
    ),
}
CLIENTS = {"axios": AXIOS, "fetch": FETCH}


def js_function(tmp_path: Path, url: str, body: str) -> Any:
    path = tmp_path / "lookup_order.js"
    path.write_text(
        f"{SETTINGS}\n/** Look up an order. */\n"
        f"async function lookup_order(data) {{\n  const URL = {url!r};\n  {body}\n}}\n"
    )
    return load_function(path)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose connections the kernel accepts and nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield server.getsockname()[1]


def llm_detail(result: Any) -> str:
    content = json.loads(result.content)
    assert content["error"] == "function_failed"
    return str(content["detail"])


def assert_no_internals(said: str) -> None:
    for internal in ("127.0.0.1", "http", "--allow", "egress", "Axios", "TypeError"):
        assert internal not in said, said


@pytest.mark.parametrize("client", sorted(CLIENTS))
async def test_a_request_the_egress_policy_refuses_is_named_with_its_fix(
    tmp_path: Path, client: str
) -> None:
    def never(request: RawRequest) -> bytes:
        raise AssertionError("the refused request reached the server")

    with running_raw_server(never) as server:
        url = f"{server.url}/orders/42?api_key=s3cr3t-value"
        fn = js_function(tmp_path, url, CLIENTS[client]["plain"])
        async with Executor() as ex:  # the default policy: no loopback, no private networks
            result = await ex.run(fn, {}, tool_call_id="t")
        assert server.requests == []
    assert not result.ok
    detail = result.data["detail"]
    first = "AxiosError: Network Error" if client == "axios" else "TypeError: fetch failed"
    assert detail.startswith(f"{first}; the engine saw: GET {server.url}/orders/42?api_key=")
    assert "was refused by the egress policy: 127.0.0.1 is" in detail
    assert "Allow it with --allow-private-network or an allow-list entry" in detail
    assert detail.count("refused by default") == 1  # fetch's own text repeats it: said once
    assert "s3cr3t-value" not in detail
    said = llm_detail(result)
    assert said.startswith("a service the function needs cannot be reached from here")
    assert "will not help" in said
    assert_no_internals(said)
    [record] = result.sandbox["http"]
    assert record["error"].startswith("refused by the egress policy: 127.0.0.1 is")
    assert result.sandbox["stopped_by"] == "egress-policy"


@pytest.mark.parametrize("client", sorted(CLIENTS))
async def test_a_server_that_never_answers_is_named(
    tmp_path: Path, silent_port: int, client: str
) -> None:
    url = f"http://127.0.0.1:{silent_port}/orders"
    fn = js_function(tmp_path, url, CLIENTS[client]["timeout"])
    async with Executor(allow=["127.0.0.1"]) as ex:
        result = await ex.run(fn, {}, tool_call_id="t")
    assert not result.ok
    assert result.data["reason"] == "timeout", result.data
    detail = result.data["detail"]
    assert detail.startswith("an HTTP request timed out: ")
    assert f"; the engine saw: GET {url} " in detail
    # still waiting when the job ended (the engine's own 10 s limit is far off; on a machine
    # so slow that it passed first, the note says that instead)
    assert "had no answer yet when the function stopped" in detail or "no response within" in detail
    said = llm_detail(result)
    assert (
        said
        == "a service the function needs did not answer in time; it may work if tried again later"
    )
    [record] = result.sandbox["http"]
    assert "status" not in record
    assert record["error"] in ("cancelled", "no response within 10 s")


def bad_gateway(request: RawRequest) -> bytes:
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    return raw_response(page, status=502, headers={"Content-Type": "text/html"})


@pytest.mark.parametrize("client", sorted(CLIENTS))
async def test_a_502_with_an_html_page_is_named(tmp_path: Path, client: str) -> None:
    with running_raw_server(bad_gateway) as server:
        url = f"{server.url}/orders"
        fn = js_function(tmp_path, url, CLIENTS[client]["plain"])
        async with Executor(allow=["127.0.0.1"]) as ex:
            result = await ex.run(fn, {}, tool_call_id="t")
        assert len(server.requests) == 1
    assert not result.ok
    assert result.data["reason"] == "exception"
    detail = result.data["detail"]
    if client == "axios":
        assert detail.startswith("AxiosError: Request failed with status code 502")
    else:
        assert detail.startswith("SyntaxError: ")  # r.json() of the HTML page
    assert detail.endswith(f"; the engine saw: GET {url} was answered HTTP 502 Bad Gateway")
    said = llm_detail(result)
    assert (
        said == "a service the function needs failed (HTTP 502); it may work if tried again later"
    )
    [record] = result.sandbox["http"]
    assert record["status"] == 502


async def test_an_error_without_a_failed_request_is_left_as_it_was(tmp_path: Path) -> None:
    """The note comes from the engine's records: a function's own error text that merely looks
    like a network failure gets none, and the LLM reads the function's error as before."""
    fn = js_function(
        tmp_path,
        "http://unused.invalid/",
        'throw new Error("Network Error: refused by the egress policy: nothing");',
    )
    async with Executor() as ex:
        result = await ex.run(fn, {}, tool_call_id="t")
    assert result.data["detail"] == "Error: Network Error: refused by the egress policy: nothing"
    assert llm_detail(result) == result.data["detail"]
    assert result.sandbox["http"] == []


async def test_a_post_call_function_keeps_the_whole_detail_in_its_result(tmp_path: Path) -> None:
    """No LLM reads a post-call function's result: its content has the developer's detail."""
    path = tmp_path / "sync_crm.js"
    path.write_text(
        'const __voicefn__ = { phase: "post_call", timeout_ms: 120000 };\n'
        "async function sync_crm(data) {\n"
        '  await axios.post("http://10.0.0.5/crm", { a: 1 });\n}\n'
    )
    async with Executor() as ex:
        result = await ex.run(load_function(path), {}, tool_call_id="t")
    detail = result.data["detail"]
    assert "the engine saw: POST http://10.0.0.5/crm was refused by the egress policy" in detail
    assert llm_detail(result) == detail


def test_invoke_prints_the_whole_detail_and_the_llm_reads_the_short_one(tmp_path: Path) -> None:
    from voicefn.cli import app

    fn_path = tmp_path / "lookup_order.js"
    fn_path.write_text(
        f"{SETTINGS}\n/** Look up an order. */\n"
        "async function lookup_order(data) {\n"
        '  const r = await axios.get("http://10.0.0.5/orders?token=abc123");\n'
        "  return r.data;\n}\n"
    )
    out = CliRunner().invoke(app, ["invoke", str(fn_path)], env={"COLUMNS": "400"})
    assert out.exit_code == 1, out.output
    text = " ".join(out.output.split())  # rich may wrap long lines
    assert (
        "detail AxiosError: Network Error; the engine saw: GET "
        "http://10.0.0.5/orders?token=[redacted] was refused by the egress policy" in text
    )
    assert "abc123" not in text
    assert "the LLM reads" in text
    llm = text.split("the LLM reads", 1)[1]
    assert "a service the function needs cannot be reached from here" in llm
    assert "10.0.0.5" not in llm


async def test_a_python_function_names_the_refused_request_too(tmp_path: Path) -> None:
    """Both sandboxes record requests the same way: a Python function that let the refused
    request's exception escape gets the same note (and the LLM the same short form)."""

    def never(request: RawRequest) -> bytes:
        raise AssertionError("the refused request reached the server")

    with running_raw_server(never) as server:
        path = tmp_path / "lookup_order.py"
        path.write_text(
            "async def lookup_order(ctx: RunContext) -> dict:\n"
            '    """Look up an order when the caller asks."""\n'
            f'    r = await ctx.http.get("{server.url}/orders/42?token=s3cr3t-value")\n'
            "    return r.json()\n"
        )
        async with Executor() as ex:
            result = await ex.run(load_function(path), {}, tool_call_id="t")
        assert server.requests == []
    assert not result.ok
    detail = result.data["detail"]
    assert f"the engine saw: GET {server.url}/orders/42?token=[redacted]" in detail
    assert "Allow it with --allow-private-network or an allow-list entry" in detail
    assert "s3cr3t-value" not in detail
    said = llm_detail(result)
    assert said.startswith("a service the function needs cannot be reached from here")
    assert_no_internals(said)
