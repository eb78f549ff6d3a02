"""The HTTP action's per-call work, precompiled per function: what is sent and recorded, and how a
response is read, stay exactly what they were (real servers on 127.0.0.1, the real Executor)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from voicefn import CallContext, Executor, Function, FunctionValidationError, load_function

from servers import LocalServer

TOKEN = "Bearer sk_live_SECRET_123456"


def make(url: str, *, method: str = "POST", **action: Any) -> Function:
    return load_function(
        {
            "name": "fn",
            "description": "test function",
            "parameters": {
                "type": "object",
                "properties": {"n": {"type": "integer"}, "word": {"type": "string"}},
            },
            "action": {"type": "http", "method": method, "url": url, "api_token": TOKEN, **action},
        }
    )


@pytest.fixture
async def ex() -> AsyncIterator[Executor]:
    async with Executor(allow_private_network=True) as executor:
        yield executor


class CannedServer:
    """Answers every request with ``body`` (application/json) and records the request heads."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.bodies.append(await reader.readexactly(length))
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                    + self.body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def canned() -> AsyncIterator[CannedServer]:
    state = CannedServer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


# ------------------------------------------------------------------------- reading bodies


async def test_an_integer_beyond_64_bits_in_a_response_keeps_every_digit(server, ex) -> None:
    n = 123456789012345678901234567890
    result = await ex.run(make(server.url + "/echo"), {"n": n})
    assert result.ok, result.content
    assert result.data["json"] == {"n": n}
    assert isinstance(result.data["json"]["n"], int)


async def test_nan_and_lone_surrogates_read_as_json_reads_them(canned, ex) -> None:
    canned.body = b'{"x": NaN, "y": -Infinity, "s": "\\ud800", "ok": 1.5}'
    result = await ex.run(make(f"http://127.0.0.1:{canned.port}/x"), {})
    assert result.ok, result.content
    assert math.isnan(result.data["x"])
    assert result.data["y"] == -math.inf
    assert result.data["s"] == "\ud800"
    assert result.data["ok"] == 1.5


async def test_invalid_json_names_json_s_message_and_position(canned, ex) -> None:
    canned.body = b'{"a": 1,, "b": 2}'
    result = await ex.run(make(f"http://127.0.0.1:{canned.port}/x"), {})
    assert not result.ok
    assert result.data["reason"] == "invalid_json"
    try:
        json.loads(canned.body)
    except json.JSONDecodeError as exc:
        expected = f"Endpoint returned invalid JSON ({exc.msg} at position {exc.pos})"
    assert result.data["detail"] == expected


async def test_the_request_body_is_json_dumps_of_the_arguments(canned, ex) -> None:
    url = f"http://127.0.0.1:{canned.port}/x"
    result = await ex.run(make(url), {"n": 5, "word": "naïve"})
    assert result.ok, result.content
    head = canned.heads[-1].decode("latin-1")
    body = json.dumps({"n": 5, "word": "naïve"}, ensure_ascii=False).encode()
    assert f"Content-Length: {len(body)}" in head
    assert canned.bodies[-1] in (body, json.dumps({"n": 5, "word": "naïve"}).encode())
    assert json.loads(canned.bodies[-1]) == {"n": 5, "word": "naïve"}


# ----------------------------------------------------------------- headers and records


async def test_a_line_break_in_the_call_id_or_agent_id_sends_nothing(server, ex) -> None:
    fn = make(server.url + "/echo")
    for ctx in (CallContext(call_sid="CA1\r\nX-Injected: 1"), CallContext(agent_id="a\nb")):
        result = await ex.run(fn, {"n": 1}, ctx)
        assert not result.ok
        assert result.data["reason"] == "template"
        assert "line break" in result.data["detail"]
    assert server.received == []


async def test_a_static_header_with_a_line_break_sends_nothing(server, ex) -> None:
    with pytest.raises(FunctionValidationError, match="line break"):
        make(server.url + "/echo", headers={"X-Static": "a\rb"})
    # A Function built around validation (model_copy) is still refused when it runs.
    good = make(server.url + "/echo")
    action = good.action.model_copy(update={"headers": {"X-Static": "a\rb"}})
    fn = good.model_copy(update={"action": action})
    result = await ex.run(fn, {"n": 1}, CallContext(call_sid="CA1"))
    assert not result.ok
    assert result.data["reason"] == "template"
    assert "'X-Static'" in result.data["detail"]
    assert server.received == []


async def test_a_url_no_request_can_carry_is_a_template_failure_not_a_crash(server, ex) -> None:
    # A Function built around validation (model_copy) with a URL httpx refuses.
    good = make(server.url + "/echo")
    fn = good.model_copy(
        update={"action": good.action.model_copy(update={"url": "https://[::1/x"})}
    )
    result = await ex.run(fn, {"n": 1}, CallContext(call_sid="CA1"))
    assert not result.ok
    assert result.error == "request_failed"
    assert result.data["reason"] == "template"
    assert result.data["detail"].startswith("The request could not be built:")
    assert server.received == []


async def test_each_call_sends_and_records_its_own_headers(server: LocalServer, ex) -> None:
    fn = make(server.url + "/echo", headers={"X-Api-Key": "k-123456", "X-Tenant": "{tenant}"})
    one = await ex.run(fn, {"n": 1}, CallContext(call_sid="CA1", variables={"tenant": "a"}))
    two = await ex.run(
        fn, {"n": 2}, CallContext(call_sid="CA2", agent_id="ag", variables={"tenant": "b"})
    )
    assert one.ok, one.content
    assert two.ok, two.content
    first, second = server.received
    assert first.headers["X-Voicefn-Call-Id"] == "CA1"
    assert "X-Voicefn-Agent-Id" not in first.headers
    assert first.headers["X-Tenant"] == "a"
    assert second.headers["X-Voicefn-Call-Id"] == "CA2"
    assert second.headers["X-Voicefn-Agent-Id"] == "ag"
    assert second.headers["X-Tenant"] == "b"
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert one.request is not None
    assert two.request is not None
    assert one.request.headers is not two.request.headers
    assert one.request.headers["X-Voicefn-Call-Id"] == "CA1"
    assert "X-Voicefn-Agent-Id" not in one.request.headers
    assert one.request.headers["X-Api-Key"] == "[redacted]"
    assert one.request.headers["Authorization"] == "[redacted]"
    assert one.request.headers["X-Tenant"] == "a"
    assert two.request.headers["X-Tenant"] == "b"


async def test_a_configured_header_named_like_a_dynamic_one_keeps_its_place(canned, ex) -> None:
    fn = make(f"http://127.0.0.1:{canned.port}/x", headers={"X-Voicefn-Call-Id": "static"})
    result = await ex.run(fn, {"n": 1}, CallContext(call_sid="CA9"))
    assert result.ok, result.content
    lines = canned.heads[-1].decode("latin-1").split("\r\n")
    names = [line.split(":", 1)[0] for line in lines[1:] if line]
    assert [line for line in lines if line.startswith("X-Voicefn-Call-Id")] == [
        "X-Voicefn-Call-Id: CA9"
    ]
    # where the configuration put it: before Authorization (the token comes after the headers)
    assert names.index("X-Voicefn-Call-Id") < names.index("Authorization")


async def test_the_recorded_url_hides_secrets_with_or_without_a_query(server, ex) -> None:
    fn = make(server.url + "/echo?k=sk_live_SECRET_123456", method="GET")
    plain = await ex.run(fn, {})
    with_query = await ex.run(fn, {"n": 3})
    assert plain.ok, plain.content
    assert with_query.ok, with_query.content
    assert plain.request is not None
    assert with_query.request is not None
    assert "SECRET" not in plain.request.url
    assert "SECRET" not in with_query.request.url
    assert with_query.request.url.endswith("&n=3")
    assert server.received[-1].query == {"k": ["sk_live_SECRET_123456"], "n": ["3"]}


# ------------------------------------------------------------------- reading arguments


async def test_arguments_read_as_json_reads_them(server, ex) -> None:
    fn = make(server.url + "/echo")
    big = 123456789012345678901234567890
    result = await ex.run(fn, f'{{"n": {big}, "word": "caf\\u00e9", "n": {big}}}')
    assert result.ok, result.content
    assert server.received[-1].json == {"n": big, "word": "café"}
    assert result.arguments == {"n": big, "word": "café"}
    for raw, detail in (
        ('{"n": NaN}', "NaN is not a JSON number"),
        ('{"n": 1e400}', "numbers must be finite"),
        ("[1, 2]", "must be a JSON object"),
        ('{"n": 1,}', "not valid JSON"),
    ):
        result = await ex.run(fn, raw)
        assert result.error == "invalid_arguments", raw
        assert detail in result.data["detail"], (raw, result.data["detail"])
    assert len(server.received) == 1  # none of those was sent
    result = await ex.run(fn, "null")
    assert result.ok, result.content
    assert server.received[-1].json == {}
