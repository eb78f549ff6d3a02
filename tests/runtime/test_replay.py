"""Real providers' recorded streams, replayed byte for byte by the local LLM server.

The recordings (tests/runtime/recordings/, sources in its README) go over real HTTP to the real
openai SDK inside a real CallSession, with functions sent to a real local server. Only the
LLM's answers are canned, at the HTTP boundary. Expected values are read from the recordings
themselves, so a test checks that what the provider sent is what the call did.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from voicefn import Executor
from voicefn.runtime import (
    AgentMessage,
    AgentTextDelta,
    CallSession,
    ErrorEvent,
    Event,
    FunctionFinished,
    FunctionStarted,
    TurnFinished,
    load_agent,
)
from voicefn.testing import RawReply, ScriptedLLM, text

from servers import LocalServer

RECORDINGS = Path(__file__).parent / "recordings"


def recording(name: str) -> RawReply:
    path = RECORDINGS / name
    if name.endswith(".sse"):
        return RawReply.sse(path.read_bytes())
    return RawReply.from_chunks(path.read_text(encoding="utf-8").splitlines())


def recorded_chunks(name: str) -> list[dict[str, Any]]:
    """The chunk objects of a recording, parsed here independently of the session."""
    chunks = []
    for line in (RECORDINGS / name).read_text(encoding="utf-8").splitlines():
        line = line.removeprefix("data: ").strip()
        if line.startswith("{"):
            chunks.append(json.loads(line))
    return chunks


def deltas(name: str) -> Iterator[dict[str, Any]]:
    for chunk in recorded_chunks(name):
        for choice in chunk.get("choices") or []:
            if isinstance(choice.get("delta"), dict):
                yield choice["delta"]


def recorded_reasoning(name: str) -> str:
    return "".join(d.get("reasoning_content") or "" for d in deltas(name))


def function(server: LocalServer, name: str, *params: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} (replay)",
        "parameters": {
            "type": "object",
            "properties": {p: {"type": "string", "description": p} for p in params},
        },
        "action": {
            "type": "http",
            "method": "POST",
            "url": server.url + "/echo",
            "param": {p: f"%({p})s" for p in params},
        },
    }


@pytest.fixture
async def ex() -> AsyncIterator[Executor]:
    async with Executor(allow_private_network=True) as executor:
        yield executor


@pytest.fixture
async def session(
    server: LocalServer, ex: Executor
) -> AsyncIterator[tuple[CallSession, ScriptedLLM]]:
    with ScriptedLLM() as llm:
        agent = load_agent(
            {
                "name": "replay",
                "system_prompt": "You help.",
                "llm": {"model": "recorded", "base_url": llm.base_url, "max_retries": 0},
                "functions": [
                    function(server, "weather", "location"),
                    function(server, "webSearchTool", "query"),
                    function(server, "read_file", "path"),
                    function(server, "get_current_time"),
                ],
            }
        )
        call = CallSession(agent, executor=ex)
        try:
            yield call, llm
        finally:
            await call.aclose()


async def turn(call: CallSession, words: str) -> list[Event]:
    return [event async for event in call.turn(words)]


def of(kind: type, events: list[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


# --------------------------------------------------------------------------- spoken text


def content_text(name: str) -> str:
    """What the recording's ``content`` says, text parts only."""
    out = []
    for d in deltas(name):
        content = d.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(p["text"] for p in content if p.get("type") == "text")
    return "".join(out)


@pytest.mark.parametrize(
    "name",
    [
        "azure-async-content-filter.chunks.txt",  # a content-filter choice with no delta
        "azure-model-router.chunks.txt",
        "moonshot-kimi-reasoning.chunks.txt",  # reasoning_content, not to be spoken
        "mistral-magistral-reasoning.chunks.txt",  # content as a list of thinking/text parts
    ],
)
async def test_recorded_text_streams_are_spoken_exactly(
    session: tuple[CallSession, ScriptedLLM], name: str
) -> None:
    call, llm = session
    llm.push(recording(name), text("Still here."))
    events = await turn(call, "hello")
    expected = content_text(name)
    assert expected  # the recording does say something
    assert of(ErrorEvent, events) == []
    assert "".join(d.text for d in of(AgentTextDelta, events)) == expected
    assert of(AgentMessage, events) == [AgentMessage(expected)]
    assert isinstance(events[-1], TurnFinished)
    again = await turn(call, "and now?")
    assert of(AgentMessage, again) == [AgentMessage("Still here.")]
    assert llm.requests[1]["messages"][-2] == {"role": "assistant", "content": expected}


async def test_azure_content_filter_chunk_is_in_the_recording(
    session: tuple[CallSession, ScriptedLLM],
) -> None:
    # The point of the Azure recording: a choice without "delta" (asynchronous filter).
    choices = [
        c
        for chunk in recorded_chunks("azure-async-content-filter.chunks.txt")
        for c in chunk["choices"]
    ]
    assert any("delta" not in c and "content_filter_offsets" in c for c in choices)


async def test_think_block_in_content_is_neither_spoken_nor_kept(
    session: tuple[CallSession, ScriptedLLM],
) -> None:
    # DeepSeek-R1 served by Together (through Hugging Face's router): <think>...</think> inside
    # content, the tags as tokens of their own, then the answer.
    name = "together-deepseek-r1-think.sse"
    call, llm = session
    llm.push(recording(name), text("ok"))
    events = await turn(call, "hi")
    content = content_text(name)
    reasoning, answer = content.split("</think>")
    assert reasoning.startswith("<think>")
    assert len(reasoning) > 100
    spoken = "".join(d.text for d in of(AgentTextDelta, events))
    assert spoken == answer.lstrip()
    assert "<think>" not in spoken
    assert "</think>" not in spoken
    assert of(AgentMessage, events) == [AgentMessage(answer.lstrip())]
    await turn(call, "again")
    assert llm.requests[1]["messages"][-2]["content"] == answer.lstrip()


# --------------------------------------------------------------------------- tool calls


def recorded_call(name: str) -> tuple[str, str, dict[str, Any]]:
    """``(id, function, arguments)`` of the one tool call in a recording, assembled here by
    the id where there is one (providers differ in what they put in index)."""
    ids: list[str] = []
    names: list[str] = []
    args: list[str] = []
    for d in deltas(name):
        for tc in d.get("tool_calls") or []:
            if tc.get("id") and tc["id"] not in ids:
                ids.append(tc["id"])
            fn = tc.get("function") or {}
            if fn.get("name"):
                names.append(fn["name"])
            args.append(fn.get("arguments") or "")
    assert len(ids) == 1, ids
    return ids[0], "".join(names), json.loads("".join(args) or "{}")


@pytest.mark.parametrize(
    "name",
    [
        "deepseek-reasoner-tool-call.chunks.txt",  # reasoning_content, then argument fragments
        "xai-grok-tool-call.chunks.txt",  # reasoning_content, whole call in one delta
        "mistral-tool-call.chunks.txt",  # no index at all
        "groq-tool-call.chunks.txt",  # whole call in one delta, "{}" arguments
        "alibaba-qwen-tool-call.chunks.txt",  # id "" on continuations, an empty trailing fragment
        "zai-glm-incremental-tool-call.chunks.txt",  # name "" on the continuation
        "anthropic-compat-text-then-tool-call.sse",  # words first, the call at index 1
    ],
)
async def test_recorded_tool_calls_run_once_with_their_arguments(
    session: tuple[CallSession, ScriptedLLM], server: LocalServer, name: str
) -> None:
    call, llm = session
    call_id, function_name, arguments = recorded_call(name)
    llm.push(recording(name), text("Here you go."))
    events = await turn(call, "please")
    assert of(ErrorEvent, events) == []
    started = of(FunctionStarted, events)
    assert [(s.function, s.tool_call_id, s.arguments) for s in started] == [
        (function_name, call_id, arguments)
    ]
    finished = of(FunctionFinished, events)
    assert len(finished) == 1
    assert finished[0].result.ok
    assert [r.json for r in server.received] == [arguments]
    said = content_text(name)
    messages = llm.requests[1]["messages"]
    assistant, tool = messages[-2], messages[-1]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == (said or None)
    assert [(c["id"], c["function"]["name"]) for c in assistant["tool_calls"]] == [
        (call_id, function_name)
    ]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == arguments
    assert tool["role"] == "tool"
    assert tool["tool_call_id"] == call_id
    reasoning = recorded_reasoning(name)
    if reasoning:  # DeepSeek needs it back while it works through tool calls
        assert assistant["reasoning_content"] == reasoning
    else:
        assert "reasoning_content" not in assistant
    if said:  # words said in the same response as the call are a message of their own
        assert AgentMessage(said) in events
    assert of(AgentMessage, events)[-1] == AgentMessage("Here you go.")
    assert isinstance(events[-1], TurnFinished)


async def test_gemini_thought_signatures_go_back_with_the_tool_call(
    session: tuple[CallSession, ScriptedLLM], server: LocalServer
) -> None:
    # Gemini's OpenAI-compatible endpoint, recorded (non-streamed) by pydantic-ai: the
    # signature in extra_content, a tool call with an empty id. Streamed here with the recorded
    # values in Gemini's streaming shape (no index, extra_content on the call and the delta).
    recorded = json.loads((RECORDINGS / "gemini-openai-compat-tool-call.json").read_text())
    message = recorded["choices"][0]["message"]
    recorded_tc = message["tool_calls"][0]
    assert recorded_tc["id"] == ""
    extra = message["extra_content"]
    tc = {k: v for k, v in recorded_tc.items() if k != "id"}
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "extra_content": extra}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{**tc, "extra_content": extra}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    call, llm = session
    llm.push(
        RawReply.from_chunks([json.dumps(c) for c in chunks]),
        text("It is noon."),
    )
    events = await turn(call, "What is the current time?")
    started = of(FunctionStarted, events)
    assert [(s.function, s.arguments) for s in started] == [("get_current_time", {})]
    assert started[0].tool_call_id  # an id of ours, since Gemini gave none
    assert of(AgentMessage, events)[-1] == AgentMessage("It is noon.")
    assistant = llm.requests[1]["messages"][-2]
    assert assistant["extra_content"] == extra
    assert assistant["tool_calls"][0]["extra_content"] == extra
    assert assistant["tool_calls"][0]["id"] == started[0].tool_call_id
    assert llm.requests[1]["messages"][-1]["tool_call_id"] == started[0].tool_call_id
    assert extra["google"]["thought_signature"]
