"""The engine's aiohttp transport keeps the egress guarantees the httpx one had."""

from __future__ import annotations

import socket

import pytest

from voicefn import Executor, load_function
from voicefn.egress import EgressDenied, EgressPolicy
from voicefn.outbound import Request
from voicefn.transport import AiohttpTransport, EgressResolver

from servers import LocalServer


def fn(url: str):
    return load_function(
        {
            "name": "probe",
            "description": "test",
            "parameters": {"type": "object", "properties": {}},
            "action": {"type": "http", "method": "GET", "url": url, "param": {}},
        }
    )


async def test_the_resolver_yields_only_allowed_addresses():
    refused = EgressResolver(EgressPolicy())
    with pytest.raises(EgressDenied, match="loopback"):
        await refused.resolve("localhost", 80, socket.AF_UNSPEC)
    allowed = EgressResolver(EgressPolicy(allow=("127.0.0.0/8",)))
    results = await allowed.resolve("localhost", 80, socket.AF_INET)
    assert {r["host"] for r in results} == {"127.0.0.1"}
    assert all(r["hostname"] == "localhost" and r["port"] == 80 for r in results)


async def test_a_name_that_resolves_to_a_refused_address_is_refused_at_connect(server):
    # "localhost" passes the URL check when 127.0.0.0/8 is allowed, but the address allowed
    # here is another one: the resolver is what refuses it.
    async with Executor(allow=["127.0.0.2"]) as ex:
        result = await ex.run(fn(f"http://localhost:{server.port}/echo"), {})
    assert result.data["reason"] == "blocked", result.content
    assert server.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/echo",
        "http://[::ffff:127.0.0.1]:{port}/echo",
        "http://2130706433:{port}/echo",
        "http://0x7f000001:{port}/echo",
        "http://127.1:{port}/echo",
    ],
)
async def test_literal_addresses_in_any_spelling_are_refused(server: LocalServer, url):
    async with Executor() as ex:
        result = await ex.run(fn(url.format(port=server.port)), {})
    assert result.data["reason"] in {"blocked", "invalid_url"}, result.content
    assert server.received == []


async def test_a_policy_pass_is_remembered_per_origin_and_a_refusal_never_is(server):
    transport = AiohttpTransport(EgressPolicy(allow=("127.0.0.1",)))
    try:
        ok = Request("GET", f"{server.url}/echo", [])
        for _ in range(2):
            response = await transport.send(ok)
            assert response.status_code == 200
            await response.aread()
            await response.aclose()
        assert transport._checked == {("http", "127.0.0.1")}
        with pytest.raises(EgressDenied):
            await transport.send(Request("GET", "http://10.1.2.3/", []))
        assert ("http", "10.1.2.3") not in transport._checked
    finally:
        await transport.aclose()


async def test_no_cookie_jar_and_no_redirects_of_its_own(server):
    transport = AiohttpTransport(EgressPolicy(allow=("127.0.0.1",)))
    try:
        for path in ("/set-cookie", f"/redirect?to={server.url}/echo", "/echo"):
            response = await transport.send(Request("GET", server.url + path, []))
            await response.aread()
            await response.aclose()
    finally:
        await transport.aclose()
    assert [r.path for r in server.received] == ["/set-cookie", "/redirect", "/echo"]
    assert "Cookie" not in server.received[-1].headers


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "GET"])
async def test_a_request_without_a_body_carries_no_content_type(server, method):
    # aiohttp would invent "application/octet-stream" for a bodiless POST/PUT/PATCH (a strict API
    # answers 415); a sandbox's fetch without a body reaches the transport like this.
    transport = AiohttpTransport(EgressPolicy(allow=("127.0.0.1",)))
    try:
        response = await transport.send(Request(method, f"{server.url}/echo", [], None))
        await response.aread()
        await response.aclose()
        typed = Request(method, f"{server.url}/echo", [("Content-Type", "text/plain")], b"hi")
        response = await transport.send(typed)
        await response.aread()
        await response.aclose()
    finally:
        await transport.aclose()
    bare, typed_received = server.received[-2:]
    assert bare.method == method
    assert "Content-Type" not in bare.headers
    assert typed_received.headers["Content-Type"] == "text/plain"
