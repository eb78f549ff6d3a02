"""Stream shapes of real providers for which no public recording was found, written by hand
after the provider's documented behaviour (linked per test), plus streams that break. Served
over real HTTP by the local LLM server, read by the real openai SDK and CallSession."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
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
from voicefn.runtime.streaming import ThinkFilter, split_objects
from voicefn.testing import RawReply, Reply, ScriptedLLM, text, tool_call

from servers import LocalServer


def fn(server: LocalServer, name: str, param: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": name,
        "parameters": {
            "type": "object",
            "properties": {param: {"type": "string", "description": param}},
        },
        "action": {
            "type": "http",
            "method": "POST",
            "url": server.url + "/echo",
            "param": {param: f"%({param})s"},
        },
    }


@pytest.fixture
async def session(server: LocalServer) -> AsyncIterator[tuple[CallSession, ScriptedLLM]]:
    async with Executor(allow_private_network=True) as ex:
        with ScriptedLLM() as llm:
            agent = load_agent(
                {
                    "name": "shapes",
                    "llm": {"model": "m", "base_url": llm.base_url, "max_retries": 0},
                    "functions": [
                        fn(server, "check_order_status", "order_id"),
                        fn(server, "get_store_hours", "city"),
                    ],
                }
            )
            call = CallSession(agent, executor=ex)
            try:
                yield call, llm
            finally:
                await call.aclose()


def stream(*deltas: dict[str, Any], finish: str = "tool_calls") -> RawReply:
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d}]}
        for d in deltas
    ]
    chunks.append({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return RawReply.from_chunks(json.dumps(c) for c in chunks)


def tc(**fields: Any) -> dict[str, Any]:
    """A tool-call fragment: index/id/type as given, name/arguments under function."""
    out = {k: v for k, v in fields.items() if k in ("index", "id", "type")}
    function = {k: v for k, v in fields.items() if k in ("name", "arguments")}
    if function:
        out["function"] = function
    return out


async def turn(call: CallSession, words: str) -> list[Event]:
    return [e async for e in call.turn(words)]


def started(events: list[Event]) -> list[tuple[str, Any]]:
    return [(e.function, e.arguments) for e in events if isinstance(e, FunctionStarted)]


BOTH = [
    ("check_order_status", {"order_id": "A1"}),
    ("get_store_hours", {"city": "Lyon"}),
]


async def run_both(session: tuple[CallSession, ScriptedLLM], reply: RawReply) -> list[Event]:
    call, llm = session
    llm.push(reply, text("Done."))
    events = await turn(call, "order A1 and the Lyon store hours")
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    assert sorted(started(events)) == sorted(BOTH)
    assert all(e.result.ok for e in events if isinstance(e, FunctionFinished))
    calls = llm.requests[1]["messages"][-3]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == [name for name, _ in BOTH]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [a for _, a in BOTH]
    tool_ids = [m["tool_call_id"] for m in llm.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_ids == [c["id"] for c in calls]
    return events


async def test_parallel_calls_that_all_say_index_0_are_kept_apart_by_id(
    session: tuple[CallSession, ScriptedLLM],
) -> None:
    # Ollama streams index 0 for every call of a parallel batch (ollama/ollama#15457).
    await run_both(
        session,
        stream(
            {
                "tool_calls": [
                    tc(
                        index=0,
                        id="call_a",
                        type="function",
                        name="check_order_status",
                        arguments="",
                    )
                ]
            },
            {"tool_calls": [tc(index=0, arguments='{"order_id":')]},
            {"tool_calls": [tc(index=0, arguments=' "A1"}')]},
            {
                "tool_calls": [
                    tc(index=0, id="call_b", type="function", name="get_store_hours", arguments="")
                ]
            },
            {"tool_calls": [tc(index=0, arguments='{"city": "Lyon"}')]},
        ),
    )


async def test_calls_without_index_in_separate_deltas(
    session: tuple[CallSession, ScriptedLLM],
) -> None:
    # Ollama before 0.5 omitted index (ollama/ollama#7881); Gemini's compat endpoint too.
    await run_both(
        session,
        stream(
            {
                "tool_calls": [
                    tc(id="call_a", name="check_order_status", arguments='{"order_id":"A1"}')
                ]
            },
            {"tool_calls": [tc(id="call_b", name="get_store_hours", arguments='{"city":"Lyon"}')]},
        ),
    )


async def test_two_calls_in_one_delta_without_index_or_id(
    session: tuple[CallSession, ScriptedLLM],
) -> None:
    await run_both(
        session,
        stream(
            {
                "tool_calls": [
                    tc(name="check_order_status", arguments='{"order_id":"A1"}'),
                    tc(name="get_store_hours", arguments='{"city":"Lyon"}'),
                ]
            }
        ),
    )


async def test_an_earlier_call_waits_for_its_arguments_to_close(
    session: tuple[CallSession, ScriptedLLM],
) -> None:
    # Interleaved fragments: call 1 starts before call 0's arguments are complete.
    events = await run_both(
        session,
        stream(
            {
                "tool_calls": [
                    tc(index=0, id="call_a", name="check_order_status", arguments='{"order_')
                ]
            },
            {
                "tool_calls": [
                    tc(index=1, id="call_b", name="get_store_hours", arguments='{"city":')
                ]
            },
            {"tool_calls": [tc(index=1, arguments='"Lyon"}')]},
            {"tool_calls": [tc(index=0, arguments='id":"A1"}')]},
        ),
    )
    # The call whose arguments closed first was sent first.
    assert [name for name, _ in started(events)] == ["get_store_hours", "check_order_status"]


async def test_whole_objects_back_to_back_under_one_call_are_split(
    session: tuple[CallSession, ScriptedLLM], server: LocalServer
) -> None:
    call, llm = session
    llm.push(
        stream(
            {
                "tool_calls": [
                    tc(
                        index=0,
                        id="call_a",
                        name="check_order_status",
                        arguments='{"order_id":"A1"}',
                    )
                ]
            },
            {"tool_calls": [tc(index=0, arguments='{"order_id":"B2"}')]},
        ),
        text("Both found."),
    )
    events = await turn(call, "A1 and B2")
    assert started(events) == [
        ("check_order_status", {"order_id": "A1"}),
        ("check_order_status", {"order_id": "B2"}),
    ]
    # both were sent; they run concurrently, so their arrival order is the scheduler's
    assert sorted(r.json["order_id"] for r in server.received) == ["A1", "B2"]
    calls = llm.requests[1]["messages"][-3]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"order_id": "A1"},
        {"order_id": "B2"},
    ]
    assert calls[0]["id"] == "call_a"
    assert calls[1]["id"] not in ("", "call_a")


async def test_objects_back_to_back_are_not_split_unless_whole(
    session: tuple[CallSession, ScriptedLLM], server: LocalServer
) -> None:
    call, llm = session
    llm.push(
        stream(
            {
                "tool_calls": [
                    tc(
                        index=0,
                        id="call_a",
                        name="check_order_status",
                        arguments='{"order_id":"A1"}{"order_id":',
                    )
                ]
            }
        ),
        text("Sorry?"),
    )
    events = await turn(call, "A1 and...")
    finished = [e for e in events if isinstance(e, FunctionFinished)]
    assert [f.result.error for f in finished] == ["invalid_arguments"]
    assert server.received == []


async def test_think_tags_split_across_chunks_are_not_spoken(
    session: tuple[CallSession, ScriptedLLM],
) -> None:
    call, llm = session
    pieces = ["<thi", "nk>The caller", " greets me.</th", "ink>\n\nHel", "lo! <b>", "Hi</b>"]
    llm.push(stream(*({"content": p} for p in pieces), finish="stop"))
    events = await turn(call, "hi")
    spoken = "".join(e.text for e in events if isinstance(e, AgentTextDelta))
    assert spoken == "Hello! <b>Hi</b>"
    assert [e for e in events if isinstance(e, AgentMessage)] == [AgentMessage("Hello! <b>Hi</b>")]


# --------------------------------------------------------------------------- broken streams


async def test_an_unexpected_exception_ends_the_turn_not_the_call(
    session: tuple[CallSession, ScriptedLLM], server: LocalServer
) -> None:
    # A proxy cut a data line short: the SDK raises a JSON error (not an openai.APIError)
    # after the call's arguments were complete and the function was sent.
    call, llm = session
    broken = (
        b'data: {"choices":[{"index":0,"delta":{"content":"Checking."}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a",'
        b'"function":{"name":"check_order_status","arguments":"{\\"order_id\\":\\"A1\\"}"}}]}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"tru\n\n'
    )
    llm.push(RawReply.sse(broken), text("It shipped."))
    events = await turn(call, "where is A1?")
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.message for e in errors] == ["the turn failed"]
    assert "JSONDecodeError" in (errors[0].detail or "")
    assert isinstance(events[-1], TurnFinished)
    assert events.index(errors[0]) == len(events) - 2
    # The call goes on: the sent function's result joins the history, the next turn works.
    events = await turn(call, "so?")
    assert [e.tool_call_id for e in events if isinstance(e, FunctionFinished)] == ["call_a"]
    assert [e for e in events if isinstance(e, AgentMessage)] == [AgentMessage("It shipped.")]
    roles = [m["role"] for m in llm.requests[1]["messages"]]
    assert roles[-4:] == ["user", "assistant", "tool", "user"]
    assert llm.requests[1]["messages"][-3]["content"] == "Checking."
    assert len(server.received) == 1


async def test_a_dropped_stream_is_an_error_then_the_turn_finishes(
    session: tuple[CallSession, ScriptedLLM],
) -> None:
    call, llm = session
    llm.push(text("This answer never ends", chunk_size=4, drop_after_chunks=3), text("Back."))
    events = await turn(call, "hello")
    assert [type(e) for e in events][-2:] == [ErrorEvent, TurnFinished]
    events = await turn(call, "hello?")
    assert [e for e in events if isinstance(e, AgentMessage)] == [AgentMessage("Back.")]


async def test_words_said_with_a_tool_call_are_a_message(
    session: tuple[CallSession, ScriptedLLM],
) -> None:
    call, llm = session
    llm.push(
        Reply(
            text="Let me look.", tool_calls=[tool_call("check_order_status", {"order_id": "A1"})]
        ),
        text("Found it."),
    )
    events = await turn(call, "A1?")
    messages = [e for e in events if isinstance(e, AgentMessage)]
    assert messages == [AgentMessage("Let me look."), AgentMessage("Found it.")]
    kinds = [type(e) for e in events]
    assert kinds.index(AgentMessage) < kinds.index(FunctionFinished)


# --------------------------------------------------------------------------- helpers


def test_think_filter_holds_at_every_split_point() -> None:
    content = "<think>Plan: say hi.</think>\n\nHi <there>, I think </thinking> is fine."
    for size in range(1, len(content) + 1):
        think = ThinkFilter()
        spoken = "".join(think.feed(content[i : i + size]) for i in range(0, len(content), size))
        spoken += think.flush()
        assert spoken == "Hi <there>, I think </thinking> is fine.", size
        assert "".join(think.reasoning) == "Plan: say hi."


def test_split_objects_only_when_whole() -> None:
    assert split_objects('{"a":1}{"b":2}') == ['{"a":1}', '{"b":2}']
    assert split_objects('{"a":1}\n {"b":{"c":[1]}}') == ['{"a":1}', '{"b":{"c":[1]}}']
    assert split_objects('{"a":1}') is None
    assert split_objects('{"a":1}{"b":') is None
    assert split_objects('{"a":1}[2]') is None
    assert split_objects('{"a":"}{"}') is None
    assert split_objects("[" * 100000 + "]" * 100000) is None
