"""ScriptedLLM driven by the real `openai` SDK over loopback HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from voicefn.testing import (
    ErrorReply,
    RawReply,
    Reply,
    ScriptedLLM,
    ToolCallSpec,
    error_reply,
    text,
    tool_call,
)

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
async def client(llm: ScriptedLLM) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0) as c:
        yield c


async def collect(client: openai.AsyncOpenAI, **kw: Any) -> list[tuple[float, Any]]:
    """Stream a completion; return (perf_counter at arrival, chunk) pairs."""
    kw.setdefault("model", "gpt-test")
    kw.setdefault("messages", MESSAGES)
    stream = await client.chat.completions.create(stream=True, **kw)
    out: list[tuple[float, Any]] = []
    async with stream:
        async for chunk in stream:
            out.append((time.perf_counter(), chunk))
    return out


def poll(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def reassemble(chunks: list[tuple[float, Any]]) -> dict[str, Any]:
    content = ""
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for _, chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for tc in delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
            finish = choice.finish_reason or finish
    return {"content": content, "tool_calls": calls, "finish_reason": finish}


def test_base_url_points_at_loopback_v1(llm: ScriptedLLM) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", llm.base_url)
    assert llm.port > 0


async def test_streamed_text_reassembles(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    llm.push(text("Hello! How can I help you today?", chunk_size=5))
    chunks = await collect(client)
    first = chunks[0][1]
    assert first.object == "chat.completion.chunk"
    assert first.model == "gpt-test"
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    content_chunks = [c for _, c in chunks if c.choices and c.choices[0].delta.content]
    assert [c.choices[0].delta.content for c in content_chunks][:2] == ["Hello", "! How"]
    result = reassemble(chunks)
    assert result["content"] == "Hello! How can I help you today?"
    assert result["finish_reason"] == "stop"
    assert chunks[-1][1].choices[0].finish_reason == "stop"
    assert llm.remaining == 0


async def test_tool_call_arguments_split_across_chunks(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    args = {"order_id": "A1", "note": "leave at the door, please"}
    spec = tool_call("check_order", args, id="call_abc")
    llm.push(Reply(text="Let me check.", tool_calls=[spec], chunk_size=6))
    chunks = await collect(client)

    tool_chunks = [c for _, c in chunks if c.choices and c.choices[0].delta.tool_calls]
    header = tool_chunks[0].choices[0].delta.tool_calls[0]
    assert header.index == 0
    assert header.id == "call_abc"
    assert header.type == "function"
    assert header.function.name == "check_order"
    assert header.function.arguments == ""
    fragments = [c.choices[0].delta.tool_calls[0] for c in tool_chunks[1:]]
    assert len(fragments) > 1
    assert all(f.id is None and f.function.name is None for f in fragments)
    assert all(f.index == 0 for f in fragments)

    result = reassemble(chunks)
    assert result["content"] == "Let me check."
    assert result["tool_calls"][0]["arguments"] == spec.arguments_json
    assert json.loads(result["tool_calls"][0]["arguments"]) == args
    assert result["finish_reason"] == "tool_calls"


async def test_two_tool_calls_keep_indexes_and_ids(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    llm.push(Reply(tool_calls=[tool_call("a", {"x": 1}, id="call_A"), tool_call("b", {"y": 2})]))
    llm.push(Reply(tool_calls=[ToolCallSpec("c", {})]))
    first = reassemble(await collect(client))
    assert first["content"] == ""
    assert first["tool_calls"] == {
        0: {"id": "call_A", "name": "a", "arguments": '{"x":1}'},
        1: {"id": "call_1", "name": "b", "arguments": '{"y":2}'},
    }
    second = reassemble(await collect(client))
    assert second["tool_calls"] == {0: {"id": "call_2", "name": "c", "arguments": "{}"}}


async def test_malformed_argument_strings_arrive_verbatim(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    raw = '{"x": 1, "y": "unterminated'
    llm.push(Reply(tool_calls=[tool_call("a", {"ok": True}), tool_call("b", raw)], chunk_size=3))
    result = reassemble(await collect(client))
    assert result["tool_calls"][0]["arguments"] == '{"ok":true}'
    assert result["tool_calls"][1]["arguments"] == raw


async def test_error_reply_raises_sdk_error(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    llm.push(error_reply(500, "overloaded"), error_reply(429, "slow down", type="rate_limit"))
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert info.value.status_code == 500
    assert info.value.body == {"message": "overloaded", "type": "server_error", "code": None}
    assert "overloaded" in str(info.value)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(llm.requests) == 2


async def test_non_streaming_completion(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    llm.push(
        Reply(text="Checking.", tool_calls=[tool_call("lookup", {"q": "x"}, id="call_9")]),
        text("Plain answer", usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
    )
    resp = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-test"
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id == "call_9"
    assert call.function.name == "lookup"
    assert call.function.arguments == '{"q":"x"}'

    resp2 = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert resp2.choices[0].message.content == "Plain answer"
    assert resp2.choices[0].message.tool_calls is None
    assert resp2.choices[0].finish_reason == "stop"
    assert resp2.usage is not None
    assert resp2.usage.total_tokens == 5


async def test_requests_are_recorded(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "check_order",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
            },
        }
    ]
    messages: list[Any] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "where is my order?"},
    ]
    llm.push(text("one"), text("two"))
    before = time.perf_counter()
    await collect(client, messages=messages, tools=tools, tool_choice="auto", temperature=0.2)
    await client.chat.completions.create(model="other", messages=messages)
    after = time.perf_counter()

    first, second = llm.requests
    assert first["model"] == "gpt-test"
    assert first["messages"] == messages
    assert first["tools"] == tools
    assert first["tool_choice"] == "auto"
    assert first["temperature"] == 0.2
    assert first["stream"] is True
    assert second["model"] == "other"
    assert "stream" not in second or second["stream"] is False
    times = llm.request_times
    assert len(times) == 2
    assert before <= times[0] <= times[1] <= after


async def test_delays_between_chunks_are_honoured(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    delay, before = 0.06, 0.15
    llm.push(text("abcdefghijkl", chunk_size=4, delay_s=delay, delay_before_s=before))
    start = time.perf_counter()
    chunks = await collect(client)
    assert chunks[0][0] - start >= 0.8 * before
    content_times = [t for t, c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_times) == 3
    gaps = [b - a for a, b in itertools.pairwise([chunks[0][0], *content_times])]
    assert all(g >= 0.8 * delay for g in gaps), gaps
    assert reassemble(chunks)["content"] == "abcdefghijkl"


async def test_hold_after_tool_args_delays_the_next_chunk(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    hold = 0.3
    specs = [tool_call("first", {"a": "xxxxxxxx"}), tool_call("second", {"b": 1})]
    llm.push(Reply(tool_calls=specs, hold_after_tool_args_s=hold))
    start = time.perf_counter()
    chunks = await collect(client)

    # Position (in the chunk list) at which each call's arguments became complete.
    args = {0: "", 1: ""}
    complete: dict[int, int] = {}
    for pos, (_, chunk) in enumerate(chunks):
        for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            args[tc.index] += tc.function.arguments or ""
            if args[tc.index] == specs[tc.index].arguments_json:
                complete.setdefault(tc.index, pos)
    assert set(complete) == {0, 1}
    times = [t for t, _ in chunks]
    # Call 0's arguments arrive promptly; the next chunk (call 1's header) waits for the hold,
    # and so does the finish chunk after call 1's arguments.
    assert times[complete[0]] - start < 0.8 * hold
    assert chunks[complete[0] + 1][1].choices[0].delta.tool_calls[0].id == "call_2"
    assert times[complete[0] + 1] - times[complete[0]] >= 0.8 * hold
    assert chunks[complete[1] + 1][1].choices[0].finish_reason == "tool_calls"
    assert times[complete[1] + 1] - times[complete[1]] >= 0.8 * hold


async def test_empty_queue_fails_loudly(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    llm.push(text("only one"))
    await collect(client)
    with pytest.raises(openai.InternalServerError) as info:
        await collect(client)
    assert "ScriptedLLM: no scripted reply left for request #2" in str(info.value)
    assert llm.errors == ["ScriptedLLM: no scripted reply left for request #2"]


async def test_client_cancellation_mid_stream_keeps_server_alive(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    llm.push(text("x" * 400, chunk_size=4, delay_s=0.02), text("still here"))
    got: list[Any] = []
    two_chunks = asyncio.Event()

    async def consume() -> None:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async with stream:
            async for chunk in stream:
                got.append(chunk)
                if len(got) == 2:
                    two_chunks.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two_chunks.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(got) < 50

    result = reassemble(await collect(client))
    assert result["content"] == "still here"
    assert await asyncio.to_thread(poll, lambda: llm.disconnected == [1])
    assert len(llm.requests) == 2


async def test_usage_chunk_when_requested(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}
    llm.push(text("hi there", usage=usage), text("again"))
    chunks = await collect(client, stream_options={"include_usage": True})
    last = chunks[-1][1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens == 14
    assert all(c.usage is None for _, c in chunks[:-1])
    plain = await collect(client)
    assert all(c.usage is None and c.choices for _, c in plain)


async def test_reply_factory_sees_the_request(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    def answer(request: dict[str, Any]) -> Reply:
        return text(f"you said {request['messages'][-1]['content']}")

    def broken(request: dict[str, Any]) -> Reply:
        raise RuntimeError("boom")

    llm.push(answer, broken)
    result = reassemble(await collect(client, messages=[{"role": "user", "content": "pizza"}]))
    assert result["content"] == "you said pizza"
    with pytest.raises(openai.InternalServerError, match="boom"):
        await collect(client)
    assert any("boom" in e for e in llm.errors)


async def test_models_and_unknown_paths(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    assert "scripted" in [m.id for m in models.data]
    async with httpx.AsyncClient() as http:
        resp = await http.post(f"{llm.base_url}/embeddings", json={"input": "x"})
        assert resp.status_code == 404
        assert "error" in resp.json()
        resp = await http.get(f"{llm.base_url}/nope")
        assert resp.status_code == 404
        resp = await http.post(f"{llm.base_url}/chat/completions", content=b"not json")
        assert resp.status_code == 400
    assert llm.requests == []


async def test_drop_after_chunks_breaks_the_stream(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    llm.push(text("abcdefghijklmnop", chunk_size=2, drop_after_chunks=3), text("recovered"))
    got: list[Any] = []

    async def consume() -> None:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async with stream:
            async for chunk in stream:
                got.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        await consume()
    assert len(got) == 3
    assert reassemble(await collect(client))["content"] == "recovered"
    assert llm.disconnected == [1]


async def test_async_context_manager_and_constructor_replies() -> None:
    async with ScriptedLLM([text("from ctor")]) as llm:
        async with openai.AsyncOpenAI(base_url=llm.base_url, api_key="t", max_retries=0) as c:
            resp = await c.chat.completions.create(model="m", messages=MESSAGES)
        assert resp.choices[0].message.content == "from ctor"
        url = llm.base_url
    with pytest.raises(RuntimeError):
        _ = llm.base_url
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url}/models")


def test_sync_client_and_error_reply_shape() -> None:
    with ScriptedLLM() as llm:
        llm.push(text("sync works"), ErrorReply(503, "maintenance", headers={"x-why": "test"}))
        with openai.OpenAI(base_url=llm.base_url, api_key="t", max_retries=0) as c:
            stream = c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            content = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
            assert content == "sync works"
            with pytest.raises(openai.InternalServerError) as info:
                c.chat.completions.create(model="m", messages=MESSAGES)
        assert info.value.status_code == 503
        assert info.value.response.headers["x-why"] == "test"


def test_streaming_wire_format_is_sse() -> None:
    reply = Reply(tool_calls=[tool_call("f", {"k": "v"}, id="c1")], chunk_size=4)
    with ScriptedLLM([reply]) as llm:
        payload = {"model": "m", "messages": MESSAGES, "stream": True}
        url = f"{llm.base_url}/chat/completions"
        with httpx.stream("POST", url, json=payload) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers.get("transfer-encoding") == "chunked"
            body = resp.read().decode()
    events = body.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert payloads[1]["choices"][0]["delta"] == {
        "tool_calls": [
            {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
        ]
    }
    assert payloads[2]["choices"][0]["delta"] == {
        "tool_calls": [{"index": 0, "function": {"arguments": '{"k"'}}]
    }
    assert payloads[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert len({p["id"] for p in payloads}) == 1


def test_raw_reply_is_replayed_byte_for_byte_one_event_per_write() -> None:
    # CRLF framing, a comment line, odd field order: nothing is rewritten.
    recorded = (
        b'data: {"choices":[],"prompt_filter_results":[]}\r\n\r\n'
        b": keep-alive\n\n"
        b'data: {"choices":[{"delta":{"content":"Hi"},"index":0}],"id":"x"}\n\n'
        b"data: [DONE]\n\n"
    )
    reply = RawReply.sse(recorded)
    assert b"".join(reply.events()) == recorded
    assert len(reply.events()) == 4
    with ScriptedLLM([reply, lambda body: RawReply(b"{}", content_type="application/json")]) as llm:
        payload = {"model": "m", "messages": MESSAGES, "stream": True}
        url = f"{llm.base_url}/chat/completions"
        with httpx.stream("POST", url, json=payload) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers.get("transfer-encoding") == "chunked"
            assert resp.read() == recorded
        second = httpx.post(url, json=payload)
    assert second.headers["content-type"] == "application/json"
    assert second.content == b"{}"


async def test_raw_reply_from_recorded_chunks_reaches_the_sdk(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    lines = [
        '{"id":"a","object":"chat.completion.chunk","created":1,"model":"r",'
        '"choices":[{"index":0,"delta":{"content":"He"}}]}',
        "",
        '{"id":"a","object":"chat.completion.chunk","created":1,"model":"r",'
        '"choices":[{"index":0,"delta":{"content":"llo"},"finish_reason":"stop"}]}',
    ]
    llm.push(RawReply.from_chunks(lines))
    chunks = [chunk for _, chunk in await collect(client)]
    assert [c.choices[0].delta.content for c in chunks] == ["He", "llo"]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_push_rejects_non_replies(llm: ScriptedLLM) -> None:
    with pytest.raises(TypeError):
        llm.push("hello")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size"):
        Reply(text="x", chunk_size=0)
    assert llm.remaining == 0


def test_importing_voicefn_does_not_import_testing() -> None:
    code = (
        "import sys, voicefn; "
        "assert 'voicefn.testing' not in sys.modules; "
        "assert 'http.server' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
