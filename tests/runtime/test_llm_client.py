"""The LLM client against the real local LLM server over loopback: the wire format, errors
(statuses, retries, refused connections, cut streams, timeouts) and the recorded provider streams
read chunk for chunk. Only the LLM's answers are canned, at the HTTP boundary."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from voicefn.runtime import LLMSettings
from voicefn.runtime.llm_client import (
    LLMClient,
    LLMConnectionError,
    LLMError,
    LLMStatusError,
    LLMTimeoutError,
    SSEDecoder,
    close_shared_clients,
    shared_client,
)
from voicefn.testing import RawReply, Reply, ScriptedLLM, error_reply, text, tool_call

RECORDINGS = Path(__file__).parent / "recordings"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You help."},
    {"role": "user", "content": "Où est ma commande ?"},
]


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
async def client(llm: ScriptedLLM) -> AsyncIterator[LLMClient]:
    async with LLMClient(llm.base_url, "sk-test", max_retries=0) as c:
        yield c


async def chunks_of(client: LLMClient, **options: Any) -> list[dict[str, Any]]:
    async with client.stream("m", MESSAGES, **options) as chunks:
        return [chunk async for chunk in chunks]


async def read_into(client: LLMClient, seen: list[dict[str, Any]]) -> None:
    """Stream a completion, keeping each chunk as it comes (for streams that fail)."""
    async with client.stream("m", MESSAGES) as chunks:
        async for chunk in chunks:
            seen.append(chunk)


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c.get("choices")]


# --------------------------------------------------------------------------- the wire format


async def test_streams_chunks_as_sent_and_the_request_is_the_openai_wire_format(
    llm: ScriptedLLM, client: LLMClient
) -> None:
    llm.push(Reply(text="Bonjour !", tool_calls=[tool_call("check", {"id": "A1"}, id="c1")]))
    tools = [{"type": "function", "function": {"name": "check", "parameters": {}}}]
    chunks = await chunks_of(client, tools=tools, temperature=0.2)
    said = "".join(d.get("content") or "" for d in deltas(chunks))
    assert said == "Bonjour !"
    calls = [tc for d in deltas(chunks) for tc in d.get("tool_calls") or []]
    assert calls[0]["id"] == "c1"
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"id": "A1"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert llm.requests == [
        {"model": "m", "messages": MESSAGES, "stream": True, "tools": tools, "temperature": 0.2}
    ]
    headers = llm.request_headers[0]
    assert headers["authorization"] == "Bearer sk-test"
    assert headers["content-type"] == "application/json"
    assert client.endpoint == f"{llm.base_url}/chat/completions"


async def test_the_connection_is_kept_for_the_next_request(
    llm: ScriptedLLM, client: LLMClient
) -> None:
    llm.push(text("one"), text("two"), text("three"))
    for word in ("one", "two", "three"):
        chunks = await chunks_of(client)
        assert "".join(d.get("content") or "" for d in deltas(chunks)) == word
    assert llm.connections_opened == 1


async def test_a_json_answer_to_a_stream_request_is_one_chunk(
    llm: ScriptedLLM, client: LLMClient
) -> None:
    completion = {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}],
    }
    llm.push(RawReply(json.dumps(completion).encode(), content_type="application/json"))
    chunks = await chunks_of(client)
    assert deltas(chunks) == [{"role": "assistant", "content": "Hi"}]


async def test_complete_returns_the_completion(llm: ScriptedLLM, client: LLMClient) -> None:
    llm.push(text("Sure."))
    completion = await client.complete("m", MESSAGES)
    assert completion["choices"][0]["message"]["content"] == "Sure."
    assert "stream" not in llm.requests[0]


async def test_comments_events_and_empty_data_are_read_leniently(
    llm: ScriptedLLM, client: LLMClient
) -> None:
    body = (
        b": keep-alive\r\n\r\n"
        b"event: ping\r\ndata:\r\n\r\n"
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\r\n\r\n'
        b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"b"}}]}\n\n'
        b'data:{"choices":[{"index":0,"delta":{"content":"c"}}]}\r\r'
        b"data: [DONE]\n\n"
        b'data: {"choices":[{"index":0,"delta":{"content":"never"}}]}\n\n'
    )
    llm.push(RawReply.sse(body))
    chunks = await chunks_of(client)
    assert [d["content"] for d in deltas(chunks)] == ["a", "b", "c"]


async def test_a_last_event_without_its_blank_line_is_kept(
    llm: ScriptedLLM, client: LLMClient
) -> None:
    llm.push(RawReply.sse(b'data: {"choices":[{"index":0,"delta":{"content":"end"}}]}'))
    chunks = await chunks_of(client)
    assert deltas(chunks) == [{"content": "end"}]


# --------------------------------------------------------------------------- errors


async def test_http_500_is_a_status_error_naming_the_endpoint(
    llm: ScriptedLLM, client: LLMClient
) -> None:
    llm.push(error_reply(500, "overloaded"))
    with pytest.raises(LLMStatusError) as info:
        await chunks_of(client)
    assert info.value.status == 500
    assert info.value.endpoint == client.endpoint
    assert str(info.value) == f"HTTP 500 from {client.endpoint}: overloaded"
    assert info.value.body["error"]["message"] == "overloaded"


async def test_429_is_retried_as_the_server_asks(llm: ScriptedLLM) -> None:
    llm.push(
        error_reply(429, "slow down", headers={"retry-after-ms": "20"}),
        text("Now it works."),
    )
    async with LLMClient(llm.base_url, "k", max_retries=1) as client:
        chunks = await chunks_of(client)
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == "Now it works."
    assert len(llm.requests) == 2


async def test_429_without_retries_left_is_the_error(llm: ScriptedLLM) -> None:
    llm.push(error_reply(429, "slow down", type="rate_limit_error"), text("unused"))
    async with LLMClient(llm.base_url, "k", max_retries=0) as client:
        with pytest.raises(LLMStatusError, match=r"HTTP 429 from .*: slow down") as info:
            await chunks_of(client)
    assert info.value.status == 429
    assert len(llm.requests) == 1


async def test_a_client_error_is_not_retried(llm: ScriptedLLM) -> None:
    llm.push(error_reply(400, "bad tools", type="invalid_request_error"), text("unused"))
    async with LLMClient(llm.base_url, "k", max_retries=3) as client:
        with pytest.raises(LLMStatusError, match="bad tools"):
            await chunks_of(client)
    assert len(llm.requests) == 1
    assert llm.remaining == 1


async def test_connection_refused_names_the_endpoint() -> None:
    with socket.socket() as bound:  # bound, never listening: connecting is refused
        bound.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{bound.getsockname()[1]}/v1"
        async with LLMClient(base, "k", max_retries=1) as client:
            with pytest.raises(LLMConnectionError) as info:
                await chunks_of(client)
    assert str(info.value) == f"cannot reach {base}/chat/completions: connection refused"
    assert info.value.endpoint == f"{base}/chat/completions"


async def test_an_unknown_host_names_the_endpoint() -> None:
    base = "http://no-such-host.invalid/v1"  # .invalid never resolves (RFC 2606)
    async with LLMClient(base, "k", max_retries=0) as client:
        with pytest.raises(LLMConnectionError) as info:
            await chunks_of(client)
    assert str(info.value).startswith(
        f"cannot reach {base}/chat/completions: the host name did not resolve ("
    )


async def test_a_stream_cut_mid_line_is_a_connection_error(
    llm: ScriptedLLM, client: LLMClient
) -> None:
    body = (
        b'data: {"choices":[{"index":0,"delta":{"content":"Your order"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":" has'
    )
    llm.push(RawReply(body, drop_after_bytes=len(body)), text("again"))
    seen: list[dict[str, Any]] = []
    with pytest.raises(LLMConnectionError, match="lost mid-stream") as info:
        await read_into(client, seen)
    assert deltas(seen) == [{"content": "Your order"}]
    assert client.endpoint in str(info.value)
    # The client is still usable.
    assert deltas(await chunks_of(client))[-1] == {}


async def test_a_body_that_ends_mid_event_is_a_connection_error(
    llm: ScriptedLLM, client: LLMClient
) -> None:
    # The body ends cleanly (chunked terminator) but inside a data line.
    llm.push(RawReply.sse(b'data: {"choices":[{"index":0,"delta":{"content":"Hel'))
    with pytest.raises(LLMConnectionError, match="ended in the middle of an event"):
        await chunks_of(client)


async def test_a_bad_json_line_raises_a_json_error(llm: ScriptedLLM, client: LLMClient) -> None:
    llm.push(RawReply.sse(b'data: {"choices":[{"index":0,"delta":{"content":"tru\n\n'))
    with pytest.raises(json.JSONDecodeError):
        await chunks_of(client)


async def test_an_error_event_in_the_stream_is_an_llm_error(
    llm: ScriptedLLM, client: LLMClient
) -> None:
    body = (
        b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
        b'data: {"error":{"message":"the model crashed","type":"server_error"}}\n\n'
    )
    llm.push(RawReply.sse(body))
    with pytest.raises(LLMError, match="answered with an error: the model crashed"):
        await chunks_of(client)


async def test_no_headers_in_time_is_a_timeout(llm: ScriptedLLM) -> None:
    llm.push(text("late", delay_before_s=3.0))
    async with LLMClient(llm.base_url, "k", timeout_s=0.2, max_retries=0) as client:
        with pytest.raises(LLMTimeoutError) as info:
            await chunks_of(client)
    assert str(info.value) == f"no answer from {client.endpoint} within 0.2 s"


async def test_a_stream_that_stalls_is_a_timeout(llm: ScriptedLLM) -> None:
    llm.push(text("slow words", chunk_size=2, delay_s=3.0))
    seen: list[dict[str, Any]] = []
    async with LLMClient(llm.base_url, "k", timeout_s=0.2, max_retries=0) as client:
        with pytest.raises(LLMTimeoutError):
            await read_into(client, seen)
    assert deltas(seen) == [{"role": "assistant", "content": ""}]


async def test_a_cancelled_stream_closes_its_connection(llm: ScriptedLLM) -> None:
    llm.push(text("a long answer", chunk_size=1, delay_s=0.5), text("next"))
    async with LLMClient(llm.base_url, "k", max_retries=0) as client:
        first = asyncio.get_running_loop().create_future()

        async def read() -> None:
            async with client.stream("m", MESSAGES) as chunks:
                async for _ in chunks:
                    if not first.done():
                        first.set_result(None)

        task = asyncio.create_task(read())
        await first
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert deltas(await chunks_of(client))[1] == {"content": "next"}
    assert llm.connections_opened == 2  # the cut stream's connection was not reused


# --------------------------------------------------------------------------- recordings


def recorded_chunks(name: str) -> list[dict[str, Any]]:
    chunks = []
    for line in (RECORDINGS / name).read_text(encoding="utf-8").splitlines():
        line = line.removeprefix("data: ").strip()
        if line.startswith("{"):
            chunks.append(json.loads(line))
    return chunks


def recording(name: str) -> RawReply:
    path = RECORDINGS / name
    if name.endswith(".sse"):
        return RawReply.sse(path.read_bytes())
    return RawReply.from_chunks(path.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize(
    "name", sorted(p.name for p in RECORDINGS.iterdir() if p.suffix in (".txt", ".sse"))
)
async def test_recorded_provider_streams_are_read_chunk_for_chunk(
    llm: ScriptedLLM, client: LLMClient, name: str
) -> None:
    expected = recorded_chunks(name)
    assert expected
    llm.push(recording(name))
    assert await chunks_of(client) == expected


# --------------------------------------------------------------------------- the SSE decoder


def test_sse_decoder_gives_the_same_events_at_every_split_point() -> None:
    body = (
        b": comment\r\n"
        b'data: {"a":1}\r\n\r\n'
        b"event: x\nid: 7\nretry: 10\n"
        b'data: {"b":\ndata: 2}\n\n'
        b'data:{"c":3}\r\r'
        b"data: [DONE]\n\n"
    )
    expected = [b'{"a":1}', b'{"b":\n2}', b'{"c":3}', b"[DONE]"]
    for size in range(1, len(body) + 1):
        decoder = SSEDecoder()
        events: list[bytes] = []
        for at in range(0, len(body), size):
            events += decoder.feed(body[at : at + size])
        assert events == expected, size
        assert decoder.finish() is None


def test_sse_decoder_hands_back_an_unfinished_event_at_the_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a":1}\n\ndata: {"b"') == [b'{"a":1}']
    assert decoder.finish() == b'{"b"'
    assert decoder.finish() is None


# --------------------------------------------------------------------------- sharing


def settings(llm: ScriptedLLM, **extra: Any) -> LLMSettings:
    return LLMSettings(**{"model": "m", "base_url": llm.base_url, **extra})


async def test_one_shared_client_per_endpoint_key_and_settings(
    llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTHER_LLM_KEY", "sk-other")
    first = shared_client(settings(llm))
    assert shared_client(settings(llm)) is first
    assert shared_client(settings(llm, base_url=llm.base_url + "/")) is first
    assert shared_client(settings(llm, max_retries=0)) is not first
    assert shared_client(settings(llm, timeout_s=5)) is not first
    assert shared_client(settings(llm, api_key_env="OTHER_LLM_KEY")) is not first
    llm.push(text("shared"))
    assert deltas(await chunks_of(first))[-2] == {"content": "shared"}
    await close_shared_clients()
    assert shared_client(settings(llm)) is not first


def test_shared_clients_close_when_their_loop_shuts_down(llm: ScriptedLLM) -> None:
    # asyncio.run in a thread of its own: a new loop, closed at the end like a process's.
    llm.push(text("hello"))
    made: list[LLMClient] = []

    async def main() -> None:
        client = shared_client(settings(llm))
        made.append(client)
        await chunks_of(client)
        assert client.is_open

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    thread.join(10)
    assert made
    assert not made[0].is_open  # closed by the loop's shutdown (no unclosed-session warning)
