"""The HTTP action end to end: real servers on 127.0.0.1, the real Executor and egress policy."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

import pytest

from voicefn import CallContext, Executor, Function, load_function

from servers import LocalServer, running_server

TOKEN = "Bearer sk_live_SECRET_123456"


def make(
    server: LocalServer | str,
    *,
    path: str = "/echo",
    method: str = "POST",
    param: Any = None,
    properties: dict[str, Any] | None = None,
    required: list[str] | None = None,
    headers: dict[str, str] | None = None,
    timeout_ms: int = 5000,
    **action: Any,
) -> Function:
    base = server if isinstance(server, str) else server.url
    props = (
        properties
        if properties is not None
        else {"order_id": {"type": "string", "description": "The order"}}
    )
    doc: dict[str, Any] = {
        "name": "fn",
        "description": "test function",
        "parameters": {"type": "object", "properties": props, "required": required or []},
        "action": {
            "type": "http",
            "method": method,
            "url": base + path,
            "api_token": TOKEN,
            "headers": headers or {},
            "timeout_ms": timeout_ms,
            **({"param": param} if param is not None else {}),
            **action,
        },
    }
    return load_function(doc)


@pytest.fixture
async def ex():
    async with Executor(allow_private_network=True) as executor:
        yield executor


async def test_post_sends_json_body_with_auth_call_headers_and_idempotency_key(server, ex):
    fn = make(server, param={"order_id": "%(order_id)s", "source": "voice"})
    ctx = CallContext(call_sid="CA123", agent_id="agent-9")
    result = await ex.run(fn, '{"order_id": "ORD-1"}', ctx, tool_call_id="call_abc")
    assert result.ok, result.content
    got = server.received[-1]
    assert got.method == "POST"
    assert got.json == {"order_id": "ORD-1", "source": "voice"}
    assert got.headers["Authorization"] == TOKEN
    assert got.headers["X-Voicefn-Call-Id"] == "CA123"
    assert got.headers["X-Voicefn-Agent-Id"] == "agent-9"
    assert got.headers["Content-Type"] == "application/json"
    key = got.headers["Idempotency-Key"]
    # Same call and tool-call id: same key; another tool call: another key.
    await ex.run(fn, '{"order_id": "ORD-1"}', ctx, tool_call_id="call_abc")
    await ex.run(fn, '{"order_id": "ORD-1"}', ctx, tool_call_id="call_other")
    assert server.received[-2].headers["Idempotency-Key"] == key
    assert server.received[-1].headers["Idempotency-Key"] != key
    assert json.loads(result.content)["json"] == {"order_id": "ORD-1", "source": "voice"}


async def test_get_sends_query_string_with_json_booleans_and_no_idempotency_key(server, ex):
    props = {
        "q": {"type": "string"},
        "n": {"type": "integer"},
        "flag": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "filter": {"type": "object"},
    }
    fn = make(server, method="GET", properties=props, param={k: f"%({k})s" for k in props})
    args = {"q": "a&b=c", "n": 3, "flag": False, "tags": ["x", "y"], "filter": {"a": 1}}
    result = await ex.run(fn, args)
    assert result.ok
    got = server.received[-1]
    assert got.method == "GET"
    assert got.body == b""
    assert got.query == {
        "q": ["a&b=c"],
        "n": ["3"],
        "flag": ["false"],
        "tags": ["x", "y"],
        "filter": ['{"a":1}'],
    }
    assert "Idempotency-Key" not in got.headers


@pytest.mark.parametrize(
    "value",
    [
        'say "hi"\nnew line \\ back',
        "100% sure %(order_id)s",
        "नमस्ते दुनिया",
        "مرحبا",
        "注文番号",
        "emoji 📦",
    ],
)
async def test_string_arguments_arrive_byte_exact(server, ex, value):
    fn = make(server, param={"note": "%(order_id)s", "wrapped": "note: %(order_id)s!"})
    result = await ex.run(fn, json.dumps({"order_id": value}))
    assert result.ok
    assert server.received[-1].json == {"note": value, "wrapped": f"note: {value}!"}


async def test_typed_specifiers_and_omitted_optional(server, ex):
    props = {
        "n": {"type": "integer", "description": "count"},
        "price": {"type": "number"},
        "name": {"type": "string"},
        "note": {"type": "string"},
    }
    fn = make(
        server,
        properties=props,
        required=["n"],
        param={
            "n": "%(n)i",
            "price": "%(price)f",
            "name": "%(name)s",
            "note": "%(note)s",
            "label": "x%(n)i",
        },
    )
    result = await ex.run(fn, {"n": 5, "price": 19, "name": "Ann"})
    assert result.ok
    assert server.received[-1].json == {"n": 5, "price": 19.0, "name": "Ann", "label": "x5"}
    assert isinstance(server.received[-1].json["n"], int)
    assert isinstance(server.received[-1].json["price"], float)


async def test_float_for_integer_specifier_is_an_error_not_truncation(server, ex):
    props = {"n": {"type": "number"}}
    fn = make(server, properties=props, param={"n": "%(n)i"})
    result = await ex.run(fn, {"n": 2.5})
    assert not result.ok
    assert result.data["reason"] == "template"
    assert "2.5" in result.content
    assert server.received == []


async def test_form_body_when_content_type_says_so(server, ex):
    props = {"name": {"type": "string"}, "vip": {"type": "boolean"}}
    fn = make(
        server,
        properties=props,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        param={"name": "%(name)s", "vip": "%(vip)s"},
    )
    result = await ex.run(fn, {"name": "A & B", "vip": True})
    assert result.ok
    got = server.received[-1]
    assert got.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert got.body == b"name=A+%26+B&vip=true"


async def test_no_param_template_sends_arguments_as_they_are(server, ex):
    props = {"order_id": {"type": "string"}, "qty": {"type": "integer"}}
    fn = make(server, properties=props)
    result = await ex.run(fn, {"order_id": "A1", "qty": "2", "url": "http://evil.example/"})
    assert result.ok
    assert server.received[-1].json == {"order_id": "A1", "qty": 2}
    assert result.ignored_arguments == ["url"]


async def test_arguments_cannot_change_url_method_headers_or_token(server, ex):
    fn = make(server, path="/echo", method="PUT", param={"order_id": "%(order_id)s"})
    hostile = {
        "order_id": "1",
        "url": "http://169.254.169.254/",
        "method": "DELETE",
        "headers": {"Authorization": "Bearer attacker"},
        "api_token": "Bearer attacker",
        "Authorization": "Bearer attacker",
    }
    result = await ex.run(fn, hostile)
    assert result.ok
    got = server.received[-1]
    assert (got.method, got.path) == ("PUT", "/echo")
    assert got.headers["Authorization"] == TOKEN
    assert got.json == {"order_id": "1"}


async def test_path_placeholder_is_encoded_and_cannot_escape_its_segment(server, ex):
    fn = make(server, method="GET", path="/orders/%(order_id)s/status", param={})
    await ex.run(fn, {"order_id": "../../admin?x=1#frag"})
    got = server.received[-1]
    assert got.path == "/orders/..%2F..%2Fadmin%3Fx%3D1%23frag/status"
    await ex.run(fn, {"order_id": ".."})
    assert server.received[-1].path == "/orders/%2E%2E/status"


async def test_context_fills_parameters_and_the_llm_cannot_override(server, ex):
    props = {
        "phone": {"type": "string"},
        "from_number": {"type": "string"},
        "customer_name": {"type": "string"},
    }
    fn = make(server, properties=props, required=["from_number", "customer_name"])
    ctx = CallContext(from_number="+15550001", variables={"customer_name": "Bruce"})
    result = await ex.run(
        fn, {"from_number": "+19999999", "customer_name": "Joker", "phone": "1"}, ctx
    )
    assert result.ok
    assert server.received[-1].json == {
        "phone": "1",
        "from_number": "+15550001",
        "customer_name": "Bruce",
    }
    assert sorted(result.from_context) == ["customer_name", "from_number"]


async def test_missing_required_argument_sends_nothing_and_says_what_to_ask(server, ex):
    fn = make(server, required=["order_id"])
    result = await ex.run(fn, "{}")
    assert not result.ok
    assert result.error == "missing_arguments"
    assert "order_id (The order)" in result.content
    assert result.request is None
    assert server.received == []


async def test_context_variable_in_template_and_header(server, ex):
    fn = make(
        server,
        headers={"X-Tenant": "{tenant}"},
        param={"order_id": "%(order_id)s", "agent": "{agent_id}", "greeting": "Hi {customer_name}"},
    )
    ctx = CallContext(agent_id="ag1", variables={"tenant": "acme", "customer_name": "Ana"})
    result = await ex.run(fn, {"order_id": "1"}, ctx)
    assert result.ok
    got = server.received[-1]
    assert got.json == {"order_id": "1", "agent": "ag1", "greeting": "Hi Ana"}
    assert got.headers["X-Tenant"] == "acme"


@pytest.mark.parametrize("status", [400, 404, 500, 503])
async def test_non_2xx_becomes_request_failed(server, ex, status):
    fn = make(server, path=f"/status/{status}")
    result = await ex.run(fn, {"order_id": "1"})
    assert not result.ok
    payload = json.loads(result.content)
    assert payload["error"] == "request_failed"
    assert payload["status"] == status
    assert payload["detail"] == f"Endpoint returned {status}"
    assert payload["body"] == {"message": f"status {status}"}


async def test_timeout_covers_the_whole_request(server, ex):
    fn = make(server, path="/slow?ms=2000", timeout_ms=200)
    t0 = time.perf_counter()
    result = await ex.run(fn, {"order_id": "1"})
    elapsed = time.perf_counter() - t0
    assert not result.ok
    assert result.data["reason"] == "timeout"
    assert "200 ms" in result.data["detail"]
    assert elapsed < 1.5  # cut at the deadline, far before the server answers


async def test_refused_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fn = make(f"http://127.0.0.1:{port}")
    async with Executor(allow_private_network=True) as ex:
        result = await ex.run(fn, {"order_id": "1"})
    assert result.data["reason"] == "connection"
    assert f"127.0.0.1:{port}" in result.data["detail"]


async def test_connection_reset(server, ex):
    result = await ex.run(make(server, path="/reset"), {"order_id": "1"})
    assert not result.ok
    assert result.data["reason"] == "connection"


async def test_tls_failure_is_reported_as_tls(server, ex):
    fn = make(server.url.replace("http://", "https://"))
    result = await ex.run(fn, {"order_id": "1"})
    assert not result.ok
    assert result.data["reason"] == "tls"


async def test_invalid_json_from_endpoint(server, ex):
    result = await ex.run(make(server, path="/badjson"), {"order_id": "1"})
    assert result.data["reason"] == "invalid_json"


async def test_text_body_is_returned_as_text(server, ex):
    result = await ex.run(make(server, path="/text"), {"order_id": "1"})
    assert result.ok
    assert result.content == "plain words, naïve café"


async def test_empty_body_gives_the_llm_something_to_read(server, ex):
    result = await ex.run(make(server, path="/empty"), {"order_id": "1"})
    assert result.ok
    assert json.loads(result.content) == {"ok": True, "status": 204}


async def test_large_body_is_bounded_for_the_llm_and_marked(server):
    async with Executor(allow_private_network=True, result_max_bytes=1000) as ex:
        result = await ex.run(make(server, path="/huge?bytes=50000"), {"order_id": "1"})
    assert result.ok
    assert result.truncated
    assert len(result.content.encode()) < 1100
    assert "[truncated: showing 1000 of 49998 bytes]" in result.content
    assert isinstance(result.data, str)
    assert len(result.data) == 49998


@pytest.mark.parametrize("chunked", ["0", "1"])
async def test_oversized_body_is_refused(server, chunked):
    async with Executor(allow_private_network=True, max_response_bytes=100_000) as ex:
        result = await ex.run(
            make(server, path=f"/huge?bytes=300000&chunked={chunked}"), {"order_id": "1"}
        )
    assert not result.ok
    assert result.data["reason"] == "too_large"


async def test_redirects_are_followed(server, ex):
    fn = make(server, method="GET", path=f"/redirect?to={server.url}/echo", param={})
    result = await ex.run(fn, {})
    assert result.ok
    assert [r.path for r in server.received] == ["/redirect", "/echo"]


async def test_redirect_to_a_private_address_is_refused_at_the_hop(server):
    async with Executor(allow=["localhost"]) as ex:
        with running_server("127.0.0.2") as other:
            target = f"http://localhost:{server.port}/redirect?to={other.url}/echo"
            result = await ex.run(make(target, path="", method="GET", param={}), {})
            assert not result.ok
            assert result.data["reason"] == "blocked"
            assert "127.0.0.2" in result.data["detail"]
            assert other.received == []
    assert [r.path for r in server.received] == ["/redirect"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://localhost/",
    ],
)
async def test_default_policy_refuses_non_public_addresses(url):
    async with Executor() as ex:
        result = await ex.run(make(url, path="", method="GET", param={}), {})
    assert not result.ok
    assert result.data["reason"] == "blocked"
    assert "refused" in result.data["detail"] or "not allowed" in result.data["detail"]


async def test_https_only_refuses_plain_http(server):
    async with Executor(allow_private_network=True, https_only=True) as ex:
        result = await ex.run(make(server), {"order_id": "1"})
    assert result.data["reason"] == "blocked"
    assert "https" in result.data["detail"].lower()
    assert server.received == []


async def test_secrets_never_reach_the_result_the_record_or_logs(server, ex, caplog):
    caplog.set_level(logging.DEBUG)
    fn = make(server, headers={"X-Api-Key": "key_ABCDEFGH"}, param={"order_id": "%(order_id)s"})
    result = await ex.run(fn, {"order_id": "1"})
    assert result.ok
    # The echo server returns the headers it got; the LLM must not read the secrets back.
    assert server.received[-1].headers["X-Api-Key"] == "key_ABCDEFGH"
    dumped = json.dumps(result.to_dict())
    for secret in ("sk_live_SECRET_123456", "key_ABCDEFGH"):
        assert secret not in dumped
        assert secret not in caplog.text
    assert result.request is not None
    assert result.request.headers["Authorization"] == "[redacted]"


async def test_timings_are_recorded(server, ex):
    result = await ex.run(make(server), {"order_id": "1"})
    t = result.timings
    assert t.request_ms is not None
    assert t.request_ms > 0
    assert t.time_to_request_ms is not None
    assert 0 <= t.time_to_request_ms <= t.total_ms
    assert t.total_ms >= t.request_ms


# ------------------------------------------------------------------------ pre-call webhook


async def test_pre_call_webhook_goes_to_its_url_with_execution_record(server, ex):
    with running_server() as hook:
        fn = make(
            server,
            param={"reason": "%(order_id)s"},
            pre_call_webhook_url=f"{hook.url}/echo",
            pre_call_webhook_param={"transfer_reason": "%(order_id)s", "channel": "voice"},
        )
        ctx = CallContext(call_sid="CA9", agent_id="ag", execution_id="ex-1", from_number="+1")
        result = await ex.run(fn, {"order_id": "billing"}, ctx)
        assert result.ok
        await ex.webhooks.drain(2)
        body = hook.wait_for(1)[0].json
    assert body["id"] == "ex-1"
    assert body["agent_id"] == "ag"
    assert body["status"] == "in-progress"
    assert body["telephony_data"]["call_sid"] == "CA9"
    assert body["transfer_reason"] == "billing"
    assert body["channel"] == "voice"


async def test_pre_call_webhook_falls_back_to_agent_webhook_url(server, ex):
    with running_server() as hook:
        fn = make(server, pre_call_webhook_param={"k": "v"})
        await ex.run(fn, {"order_id": "1"}, CallContext(webhook_url=f"{hook.url}/echo"))
        await ex.webhooks.drain(2)
        assert hook.wait_for(1)[0].json["k"] == "v"


async def test_no_pre_call_webhook_without_param_even_with_url(server, ex):
    with running_server() as hook:
        fn = make(server, pre_call_webhook_url=f"{hook.url}/echo")
        await ex.run(fn, {"order_id": "1"}, CallContext(webhook_url=f"{hook.url}/echo"))
        await ex.webhooks.drain(1)
        assert hook.received == []


async def test_slow_or_failing_webhook_never_delays_or_fails_the_function(server, ex):
    with running_server() as hook:
        slow = make(
            server, pre_call_webhook_url=f"{hook.url}/slow?ms=1500", pre_call_webhook_param={"a": 1}
        )
        t0 = time.perf_counter()
        result = await ex.run(slow, {"order_id": "1"})
        elapsed = time.perf_counter() - t0
        assert result.ok
        assert elapsed < 1.0
        failing = make(
            server, pre_call_webhook_url=f"{hook.url}/status/500", pre_call_webhook_param={"a": 1}
        )
        assert (await ex.run(failing, {"order_id": "1"})).ok
        await ex.webhooks.drain(3)
    assert ex.webhooks.failed == 1
    assert ex.webhooks.sent == 1


async def test_concurrent_runs_share_the_pool(server, ex):
    fn = make(server, method="GET", param={})
    results = await asyncio.gather(*(ex.run(fn, {}) for _ in range(20)))
    assert all(r.ok for r in results)
    assert len(server.received) == 20
    assert server.connections <= 20
    await asyncio.gather(*(ex.run(fn, {}) for _ in range(20)))
    assert server.connections <= 20  # the second wave reuses kept-alive connections


async def test_error_body_is_kept_small(ex):
    with running_server() as s:
        fn = make(s, path="/status/404")
        result = await ex.run(fn, {"order_id": "1"})
    assert result.data["body"] == {"message": "status 404"}
    from voicefn.actions.http import ERROR_BODY_MAX_BYTES, _error_body

    big = {"items": ["x" * 100] * 100}
    cut = _error_body(big)
    assert isinstance(cut, str)
    assert len(cut.encode()) < ERROR_BODY_MAX_BYTES + 100
    assert cut.endswith("bytes]")


async def test_cookies_set_by_one_api_never_reach_another_request(server, ex):
    # One Executor serves many tenants: a Set-Cookie must not be replayed on later requests.
    assert (await ex.run(make(server, path="/set-cookie", method="GET", param={}), {})).ok
    redirect = make(server, method="GET", path=f"/redirect?to={server.url}/echo", param={})
    assert (await ex.run(redirect, {})).ok  # httpx adds client cookies on redirect hops
    assert (await ex.run(make(server, method="GET", param={}), {})).ok
    assert [r.path for r in server.received] == ["/set-cookie", "/redirect", "/echo", "/echo"]
    assert all("cookie" not in {k.lower() for k in r.headers} for r in server.received)


async def test_multipart_form_fields_are_sent_as_parts(server, ex):
    fn = make(
        server,
        param={"name": "%(name)s", "tags": "%(tags)s"},
        properties={
            "name": {"type": "string", "description": "who"},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "tags"},
        },
        headers={"Content-Type": "multipart/form-data"},
    )
    result = await ex.run(fn, {"name": "Asha Rao", "tags": ["vip", "new"]})
    assert result.ok, result.content
    received = server.received[-1]
    content_type = received.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=", 1)[1]
    parts = [p for p in received.text.split(f"--{boundary}") if "name=" in p]
    assert [p.split("\r\n\r\n", 1)[1].rstrip("\r\n") for p in parts] == ["Asha Rao", "vip", "new"]
    assert ['name="name"' in parts[0], 'name="tags"' in parts[2]] == [True, True]
    assert result.request is not None
    assert result.request.headers["Content-Type"] == content_type


async def test_a_line_break_from_a_variable_cannot_split_the_request(server, ex):
    fn = make(server, headers={"X-Customer": "{customer}"})
    ctx = CallContext(call_sid="CA1", variables={"customer": "Ana\r\nX-Injected: 1"})
    result = await ex.run(fn, {"order_id": "ORD-1"}, ctx)
    assert not result.ok
    assert result.data["reason"] == "template"
    assert "line break" in result.data["detail"]
    assert server.received == []
