"""The engine's outbound path against hostile servers: bombs, bad redirects, any URL.

Each test names the layer that stops the attack: ``decoding`` (the bounded decoder),
``redirects`` (redirects followed by the engine), ``egress`` (the policy on each hop), or
``executor`` (nothing raises out of ``Executor.run``).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicefn import CallContext, Executor, Function, load_function

from servers import RawRequest, raw_response, running_raw_server

LIMIT = 1 << 20  # the Executor's default max_response_bytes


def gzip_bomb(layers: int, size: int = 256 << 20) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    data = b"".join(c.compress(block) for _ in range(size >> 20)) + c.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


def http_function(url: str, *, method: str = "GET", **action: Any) -> Function:
    return load_function(
        {
            "name": "fetch_it",
            "description": "test function",
            "parameters": {"type": "object", "properties": {}},
            "action": {"type": "http", "method": method, "url": url, "param": {}, **action},
        }
    )


@asynccontextmanager
async def loop_lag() -> AsyncIterator[list[float]]:
    """Measures the event loop's worst delay while the body runs (a ticker every 5 ms)."""
    worst = [0.0]
    stop = asyncio.Event()

    async def tick() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            worst[0] = max(worst[0], time.perf_counter() - before - 0.005)

    task = asyncio.create_task(tick())
    try:
        yield worst
    finally:
        stop.set()
        await task


BOMBS: dict[str, Callable[[], bytes]] = {
    "gzip": lambda: raw_response(gzip_bomb(1), headers={"Content-Encoding": "gzip"}),
    "gzip, gzip": lambda: raw_response(gzip_bomb(2), headers={"Content-Encoding": "gzip, gzip"}),
    "gzip x3, no length": lambda: raw_response(
        gzip_bomb(3), headers={"Content-Encoding": "gzip, gzip, gzip"}, length=False
    ),
    "deflate": lambda: raw_response(
        zlib.compress(bytes(64 << 20), 9), headers={"Content-Encoding": "deflate"}
    ),
    "two headers": lambda: raw_response(
        gzip_bomb(2), headers={"Content-Encoding": "gzip", "content-encoding": "gzip"}
    ),
}


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {name: make() for name, make in BOMBS.items()}


@pytest.mark.parametrize("name", list(BOMBS))
async def test_decompression_bombs_stop_at_the_budget_for_http_functions(bombs, name):
    """layer: decoding. Before: 2.1 GB RSS and ~6 s of blocked loop for 1.8 KB of gzip, gzip."""
    body = bombs[name]
    assert len(body) < 300_000
    with running_raw_server(lambda _: body) as server:
        fn = http_function(server.url + "/bomb")
        async with Executor(allow_private_network=True) as ex:
            tracemalloc.start()
            try:
                async with loop_lag() as lag:
                    result = await ex.run(fn, {})
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert not result.ok
    assert result.data["reason"] == "too_large", result.content
    assert f"{LIMIT} bytes" in result.data["detail"]
    assert peak < 6 * LIMIT  # the budget, the raw chunks and bookkeeping; never the bomb
    assert lag[0] < 1.0  # seconds; each decode call is bounded by the budget (ms here)


async def test_a_body_within_the_budget_decodes_exactly():
    payload = b'{"status": "shipped"}'
    body = raw_response(
        gzip.compress(gzip.compress(payload)),
        headers={"Content-Encoding": "gzip, gzip", "Content-Type": "application/json"},
    )
    with running_raw_server(lambda _: body) as server:
        async with Executor(allow_private_network=True) as ex:
            result = await ex.run(http_function(server.url), {})
    assert result.ok, result.content
    assert result.data == {"status": "shipped"}
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


async def test_an_encoding_the_engine_did_not_ask_for_is_a_clear_error():
    body = raw_response(b"\x00\x01\x02", headers={"Content-Encoding": "br"})
    with running_raw_server(lambda _: body) as server:
        # A configured Accept-Encoding cannot make the engine accept what it cannot bound.
        fn = http_function(server.url, headers={"Accept-Encoding": "br"})
        async with Executor(allow_private_network=True) as ex:
            result = await ex.run(fn, {})
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"
    assert result.data["reason"] == "encoding"
    assert "'br'" in result.data["detail"]


async def test_a_webhook_answering_with_a_bomb_costs_only_the_budget(bombs):
    """layer: decoding, for the pre-call webhook (its answer is read, bounded, and dropped)."""
    body = bombs["gzip, gzip"]
    with running_raw_server(lambda _: body) as server:
        fn = http_function(
            server.url + "/fn",
            pre_call_webhook_param={"x": 1},
            pre_call_webhook_url=server.url + "/hook",
        )
        async with Executor(allow_private_network=True) as ex:
            tracemalloc.start()
            try:
                await ex.run(fn, {})
                await ex.webhooks.drain(10)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            # A long 2xx answer still counts as delivered: the receiver got the webhook.
            assert (ex.webhooks.sent, ex.webhooks.failed) == (1, 0)
    assert peak < 6 * LIMIT
    assert {r.target for r in server.requests} == {"/fn", "/hook"}


# ------------------------------------------------------------------------------ redirects

BAD_LOCATIONS = [
    "http:x",  # relative (same scheme): loops back here until the redirect limit
    "javascript:alert(1)",
    "data:text/plain,hi",
    "http:\\\\[::1]/admin",
    "http://[::1",
    "http://127.0.0.1:65536/",
    "http://xn--127-0.0.0.1/",
    "ftp://example.com/file",
    "http://exa mple.com/",
    "//:99999",
]


@pytest.mark.parametrize("location", BAD_LOCATIONS)
async def test_an_unusable_redirect_is_a_redirects_result(location):
    """layer: redirects. Before: httpx.InvalidURL raised out of Executor.run."""
    with running_raw_server(
        lambda _: raw_response(b"", 302, headers={"Location": location})
    ) as server:
        async with Executor(allow_private_network=True) as ex:
            result = await ex.run(http_function(server.url + "/r"), {})
    assert not result.ok
    assert result.data["reason"] == "redirects", result.content
    assert result.data["status"] == 302
    assert "edirect" in result.data["detail"]


async def test_a_refused_redirect_hop_is_reported_under_its_own_url():
    """layer: egress, on the second hop; the detail names that hop."""
    hop = "http://169.254.169.254/latest/meta-data/"
    with running_raw_server(lambda _: raw_response(b"", 307, headers={"Location": hop})) as server:
        async with Executor(allow=["127.0.0.1"]) as ex:
            result = await ex.run(http_function(server.url + "/start"), {})
    assert result.data["reason"] == "blocked"
    assert "cloud metadata" in result.data["detail"]
    assert f"at the redirect to {hop}" in result.data["detail"]
    assert result.request is not None
    assert result.request.url == server.url + "/start"


async def test_the_token_does_not_follow_a_redirect_to_another_origin():
    def respond(request: RawRequest) -> bytes:
        if request.target == "/start":
            other = f"http://localhost:{request.headers['host'].split(':')[1]}/landed"
            return raw_response(b"", 302, headers={"Location": other})
        return raw_response(b"{}", headers={"Content-Type": "application/json"})

    with running_raw_server(respond) as server:
        fn = http_function(server.url + "/start", api_token="Bearer sk_secret_1")
        async with Executor(allow_private_network=True) as ex:
            result = await ex.run(fn, {})
    assert result.ok, result.content
    first, second = server.requests
    assert first.headers["authorization"] == "Bearer sk_secret_1"
    assert second.target == "/landed"
    assert "authorization" not in second.headers


async def test_post_becomes_get_on_303_and_stays_post_on_307():
    def respond(request: RawRequest) -> bytes:
        code = {"/303": 303, "/307": 307}.get(request.target)
        if code:
            return raw_response(b"", code, headers={"Location": "/done"})
        return raw_response(b"{}", headers={"Content-Type": "application/json"})

    with running_raw_server(respond) as server:
        async with Executor(allow_private_network=True) as ex:
            for target in ("/303", "/307"):
                fn = http_function(server.url + target, method="POST", param={"a": 1})
                assert (await ex.run(fn, {})).ok
    seen = [(r.method, r.target, r.body) for r in server.requests]
    assert seen == [
        ("POST", "/303", b'{"a": 1}'),
        ("GET", "/done", b""),
        ("POST", "/307", b'{"a": 1}'),
        ("POST", "/done", b'{"a": 1}'),
    ]


async def test_a_refused_pre_call_webhook_says_why(caplog):
    fn = http_function(
        "http://127.0.0.1:9/fn",
        pre_call_webhook_param={"x": 1},
        pre_call_webhook_url="http://10.0.0.5/hook",
    )
    caplog.set_level(logging.WARNING, "voicefn.webhooks")
    async with Executor() as ex:
        await ex.run(fn, {})
        await ex.webhooks.drain(5)
    [message] = [r.getMessage() for r in caplog.records if r.name == "voicefn.webhooks"]
    assert "10.0.0.5 is a private address" in message
    assert "EgressDenied" not in message


# ------------------------------------------------------------------- nothing ever raises

_host = st.one_of(
    st.sampled_from(
        ["127.0.0.1", "[::1]", "xn--127-0.0.0.1", "0x7f.1", "256.1.1.1", "[::ffff:127.0.0.1]"]
    ),
    st.text(st.characters(codec="utf-8"), max_size=12),
)
_port = st.one_of(st.just(""), st.integers(-5, 200_000).map(lambda p: f":{p}"), st.text(max_size=4))
_scheme = st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:", "", "javascript:"])
_url = st.one_of(
    st.builds(lambda s, h, p, t: f"{s}{h}{p}/{t}", _scheme, _host, _port, st.text(max_size=10)),
    st.text(max_size=40),
)


@given(location=_url)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_location_header_gives_a_tool_result(location):
    """layer: executor. Whatever a server redirects to, the LLM gets a result."""
    encoded = location.encode("utf-8", "surrogatepass").decode("latin-1", "replace")
    encoded = encoded.replace("\r", "").replace("\n", "")

    async def go() -> Any:
        with running_raw_server(
            lambda _: raw_response(b"", 302, headers={"Location": encoded})
        ) as server:
            async with Executor(allow=["127.0.0.1"]) as ex:
                return await asyncio.wait_for(ex.run(http_function(server.url), {}), 10)

    result = asyncio.run(go())
    assert result.content
    assert not result.ok
    assert result.data["reason"] in {"redirects", "blocked", "connection", "timeout", "tls"}


@given(url=_url)
@settings(max_examples=80, deadline=None)
def test_any_url_in_a_sandbox_request_or_function_gives_a_result(url):
    """layer: executor + egress. A sandbox request carries any URL; a function is validated."""
    from voicefn.actions.code import CodeRunner
    from voicefn.egress import EgressPolicy
    from voicefn.outbound import TenantTransports

    async def go() -> dict[str, Any]:
        runner = CodeRunner(TenantTransports(EgressPolicy()))
        try:
            request = {"method": "GET", "url": url, "headers": [], "body": ""}
            return await asyncio.wait_for(runner.egress("t", request), 10)
        finally:
            await runner.aclose()

    answer = asyncio.run(go())
    assert set(answer) <= {"error", "denied", "status", "headers", "body"}
    assert "error" in answer  # nothing public is reachable from here, and loopback is refused


async def test_an_internal_error_becomes_a_result_and_is_logged(caplog):
    """layer: executor. A bug of ours (here: a runner that raises) never escapes run()."""

    class Broken:
        async def run(self, inv: Any) -> Any:
            raise RuntimeError("boom")

    async with Executor() as ex:
        ex.http = Broken()  # type: ignore[assignment]
        caplog.set_level(logging.ERROR, "voicefn.executor")
        result = await ex.run(http_function("https://example.com/x"), {}, CallContext())
    assert not result.ok
    assert result.data == {
        "error": "function_failed",
        "reason": "internal",
        "detail": "The function could not run because of an internal error.",
    }
    assert any("boom" in (r.exc_text or "") for r in caplog.records)
