"""The call runtime against a scripted local LLM server over real HTTP, and real function
servers on 127.0.0.1. Nothing of ours is patched; no assertion depends on how fast the machine is
(order and causality, not wall-clock margins)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import pytest

from voicefn import CallContext, Executor, dump
from voicefn.runtime import (
    AgentMessage,
    AgentTextDelta,
    CallEnded,
    CallSession,
    ErrorEvent,
    Filler,
    FunctionFinished,
    FunctionStarted,
    SmsRequested,
    TransferRequested,
    TurnFinished,
    TurnInterrupted,
    load_agent,
)
from voicefn.runtime.llm_client import LLMClient
from voicefn.testing import Reply, ScriptedLLM, error_reply, text, tool_call

from servers import LocalServer, running_server


def http_fn(
    server: LocalServer | str,
    name: str = "check_order",
    path: str = "/echo",
    method: str = "POST",
    **extra: Any,
) -> dict[str, Any]:
    base = server if isinstance(server, str) else server.url
    return {
        "name": name,
        "description": f"{name} description",
        "filler": {"en": "Let me check that for you.", "hi": "मैं देखता हूँ।"},
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order ID"}},
            "required": ["order_id"],
        },
        "action": {
            "type": "http",
            "method": method,
            "url": base + path,
            "param": {"order_id": "%(order_id)s"},
        },
        **extra,
    }


def agent_doc(
    llm: ScriptedLLM, functions: list[dict[str, Any]], llm_timeout_s: float = 30.0, **extra: Any
) -> dict[str, Any]:
    return {
        "name": "test-agent",
        "system_prompt": "You help {customer_name}.",
        "variables": {"customer_name": "Ana"},
        "llm": {
            "model": "scripted",
            "base_url": llm.base_url,
            "max_tool_rounds": 3,
            "max_retries": 0,
            "timeout_s": llm_timeout_s,
        },
        "functions": functions,
        **extra,
    }


async def collect(events) -> list[Any]:
    return [ev async for ev in events]


def of(kind, events):
    return [e for e in events if isinstance(e, kind)]


@pytest.fixture
async def ex():
    async with Executor(allow_private_network=True) as executor:
        yield executor


_open: list[CallSession] = []


@pytest.fixture
async def llm():
    with ScriptedLLM() as scripted:
        yield scripted
        while _open:
            await _open.pop().aclose()


def session_for(llm, ex, functions, context=None, **extra) -> CallSession:
    session = CallSession(
        load_agent(agent_doc(llm, functions, **extra)), executor=ex, context=context
    )
    _open.append(session)
    return session


async def test_text_turn_streams_and_records_history(llm, ex, server):
    llm.push(text("Hello Ana, how can I help?", chunk_size=4))
    session = session_for(llm, ex, [http_fn(server)])
    events = await collect(session.turn("hi"))
    deltas = of(AgentTextDelta, events)
    assert len(deltas) > 1
    assert "".join(d.text for d in deltas) == "Hello Ana, how can I help?"
    assert of(AgentMessage, events)[0].text == "Hello Ana, how can I help?"
    assert isinstance(events[-1], TurnFinished)
    request = llm.requests[0]
    assert request["stream"] is True
    assert request["messages"][0] == {"role": "system", "content": "You help Ana."}
    assert request["messages"][-1] == {"role": "user", "content": "hi"}
    assert request["tools"][0]["function"]["name"] == "check_order"
    assert "url" not in json.dumps(request["tools"])
    assert session.messages[-1] == {"role": "assistant", "content": "Hello Ana, how can I help?"}


async def test_context_filled_parameters_are_hidden_from_the_llm(llm, ex, server):
    fn = http_fn(server)
    fn["parameters"]["properties"]["from_number"] = {"type": "string", "description": "caller"}
    fn["parameters"]["required"].append("from_number")
    fn["action"]["param"]["phone"] = "%(from_number)s"
    llm.push(Reply(tool_calls=[tool_call("check_order", {"order_id": "A1"})]), text("Done."))
    session = session_for(llm, ex, [fn], context=CallContext(from_number="+15550001"))
    await collect(session.turn("order A1"))
    params = llm.requests[0]["tools"][0]["function"]["parameters"]
    assert "from_number" not in params["properties"]
    assert params["required"] == ["order_id"]
    assert server.received[-1].json == {"order_id": "A1", "phone": "+15550001"}


async def test_calls_of_one_agent_share_its_tools_unless_the_context_differs(llm, ex, server):
    fn = http_fn(server)
    fn["parameters"]["properties"]["from_number"] = {"type": "string", "description": "caller"}
    agent = load_agent(agent_doc(llm, [fn]))
    first, second = (
        CallSession(agent, executor=ex, context=CallContext(variables={"tier": tier}))
        for tier in ("gold", "basic")
    )
    caller = CallSession(agent, executor=ex, context=CallContext(from_number="+15550001"))
    assert first.tools[0] is second.tools[0]
    # Shared only because it is what each call's own context gives (the cache's premise).
    for session in (first, second, caller):
        assert session.tools == [
            dump(f, "openai", context=session.context)[0] for f in agent.functions
        ]
    assert "from_number" in first.tools[0]["function"]["parameters"]["properties"]
    assert "from_number" not in caller.tools[0]["function"]["parameters"]["properties"]


async def test_tool_call_path_filler_request_result_answer(llm, ex, server):
    llm.push(
        Reply(
            tool_calls=[tool_call("check_order", {"order_id": "ORD-1"}, id="call_1")], chunk_size=3
        ),
        text("Your order is on its way."),
    )
    session = session_for(llm, ex, [http_fn(server)])
    events = await collect(session.turn("where is ORD-1?"))
    kinds = [type(e) for e in events]
    assert (
        kinds.index(Filler)
        < kinds.index(FunctionStarted)
        < kinds.index(FunctionFinished)
        < kinds.index(AgentMessage)
    )
    assert of(Filler, events)[0].text == "Let me check that for you."
    finished = of(FunctionFinished, events)[0]
    assert finished.result.ok
    assert finished.tool_call_id == "call_1"
    assert server.received[-1].json == {"order_id": "ORD-1"}
    second = llm.requests[1]["messages"]
    assert second[-2]["role"] == "assistant"
    assert second[-2]["tool_calls"][0]["id"] == "call_1"
    assert json.loads(second[-2]["tool_calls"][0]["function"]["arguments"]) == {"order_id": "ORD-1"}
    assert second[-1]["role"] == "tool"
    assert second[-1]["tool_call_id"] == "call_1"
    assert json.loads(second[-1]["content"])["json"] == {"order_id": "ORD-1"}
    record = session.executions[0]
    assert record.timings.time_to_filler_ms is not None
    assert record.timings.time_to_request_ms is not None
    assert record.timings.request_ms is not None
    assert record.timings.time_to_first_token_ms is not None


async def test_filler_in_the_calls_language(llm, ex, server):
    llm.push(Reply(tool_calls=[tool_call("check_order", {"order_id": "1"})]), text("ठीक है"))
    session = CallSession(
        load_agent(agent_doc(llm, [http_fn(server)])), executor=ex, language="hi-IN"
    )
    _open.append(session)
    events = await collect(session.turn("order 1"))
    assert of(Filler, events)[0].text == "मैं देखता हूँ।"


async def test_no_filler_when_the_agent_already_spoke_in_that_response(llm, ex, server):
    llm.push(
        Reply(text="Sure, checking.", tool_calls=[tool_call("check_order", {"order_id": "1"})]),
        text("Done."),
    )
    session = session_for(llm, ex, [http_fn(server)])
    events = await collect(session.turn("order 1"))
    assert of(Filler, events) == []
    assert len(of(FunctionFinished, events)) == 1


async def test_request_starts_while_the_filler_is_spoken_and_the_llm_still_streams(llm, ex, server):
    # The LLM holds its stream open after the arguments are complete. The host "speaks" the
    # filler: it reads no further event until the function's request has reached the server.
    # The request must get there regardless, and while the LLM is still streaming.
    llm.push(
        Reply(tool_calls=[tool_call("check_order", {"order_id": "1"})], hold_after_tool_args_s=30),
        text("unused"),
    )
    session = session_for(llm, ex, [http_fn(server)])
    events = []
    async for ev in session.turn("order 1"):
        events.append(ev)
        if isinstance(ev, Filler):
            assert not any(isinstance(e, FunctionStarted) for e in events)  # filler first
            await until(lambda: server.received)  # still "speaking" the filler
            assert len(llm.requests) == 1
            assert llm.disconnected == []  # the first stream is still open
            session.interrupt()  # end the test: the caller barges in
    assert isinstance(events[-1], TurnInterrupted)
    assert events[-1].pending_functions == ["check_order"]
    await until(lambda: llm.disconnected)
    assert llm.disconnected == [1]  # it was cut mid-stream: the request came before its end
    assert server.received[0].json == {"order_id": "1"}


async def until(condition) -> None:
    """Wait (without blocking the loop) until ``condition()`` holds, which the servers' threads
    make true; fail after 10 s (a bound for a stuck test, not a margin anything relies on)."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (state another thread changes: no Event)
            await asyncio.sleep(0.005)


async def test_missing_required_argument_sends_nothing_and_tells_the_llm(llm, ex, server):
    llm.push(Reply(tool_calls=[tool_call("check_order", {})]), text("What is your order ID?"))
    session = session_for(llm, ex, [http_fn(server)])
    events = await collect(session.turn("where is my order"))
    result = of(FunctionFinished, events)[0].result
    assert result.error == "missing_arguments"
    assert server.received == []
    tool_msg = llm.requests[1]["messages"][-1]
    assert "Ask the caller for: order_id (The order ID)" in tool_msg["content"]


async def test_malformed_arguments_become_a_result(llm, ex, server):
    llm.push(Reply(tool_calls=[tool_call("check_order", '{"order_id": ')]), text("Sorry?"))
    session = session_for(llm, ex, [http_fn(server)])
    events = await collect(session.turn("order"))
    assert of(FunctionFinished, events)[0].result.error == "invalid_arguments"
    assert server.received == []
    assert of(AgentMessage, events)[0].text == "Sorry?"


@contextlib.asynccontextmanager
async def barrier_server(parties: int):
    """A function server that answers no request until ``parties`` requests are in: calls
    made one after the other would wait for each other forever (and time out)."""
    arrived: list[bytes] = []
    together = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        arrived.append(await reader.readexactly(length))
        if len(arrived) == parties:
            together.set()
        await together.wait()
        body = json.dumps({"arrived_together": len(arrived)}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}", arrived
    finally:
        listener.close()


async def test_several_tool_calls_run_concurrently_and_return_in_order(llm, ex):
    async with barrier_server(2) as (url, arrived):
        both = [http_fn(url, name=name, path="/together") for name in ("slow_a", "slow_b")]
        for fn in both:
            fn["action"]["timeout_ms"] = 5000  # one after the other, the first would time out
        llm.push(
            Reply(
                tool_calls=[
                    tool_call("slow_b", {"order_id": "b"}, id="cb"),
                    tool_call("slow_a", {"order_id": "a"}, id="ca"),
                ]
            ),
            text("Both done."),
        )
        session = session_for(llm, ex, both)
        events = await collect(session.turn("both"))
    finished = of(FunctionFinished, events)
    assert [f.tool_call_id for f in finished] == ["cb", "ca"]
    assert all(f.result.ok for f in finished), [f.result.content for f in finished]
    assert [json.loads(f.result.content)["arrived_together"] for f in finished] == [2, 2]
    assert sorted(json.loads(body)["order_id"] for body in arrived) == ["a", "b"]
    tool_ids = [m["tool_call_id"] for m in llm.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_ids == ["cb", "ca"]


async def test_tool_rounds_are_capped(llm, ex, server):
    for i in range(3):
        llm.push(Reply(tool_calls=[tool_call("check_order", {"order_id": str(i)})]))
    llm.push(text("Let me stop there."))
    session = session_for(llm, ex, [http_fn(server)])
    events = await collect(session.turn("loop"))
    assert len(of(FunctionFinished, events)) == 3
    assert llm.requests[3]["tool_choice"] == "none"
    assert all("tool_choice" not in r for r in llm.requests[:3])
    assert of(TurnFinished, events)[0].rounds == 4


async def test_side_effecting_call_is_not_sent_twice(llm, ex, server):
    args = {"order_id": "A"}
    llm.push(Reply(tool_calls=[tool_call("check_order", args)]), text("Booked."))
    llm.push(Reply(tool_calls=[tool_call("check_order", args)]), text("Already booked."))
    session = session_for(llm, ex, [http_fn(server)])
    await collect(session.turn("book"))
    events = await collect(session.turn("book again"))
    finished = of(FunctionFinished, events)[0]
    assert finished.deduplicated
    assert len(server.received) == 1
    assert "not sent again" in llm.requests[3]["messages"][-1]["content"]


async def test_get_calls_and_allowed_repeats_are_sent_again(llm, ex, server):
    functions = [
        http_fn(server, name="lookup", method="GET"),
        http_fn(server, name="ping", allow_repeat=True),
    ]
    for name in ("lookup", "lookup", "ping", "ping"):
        llm.push(Reply(tool_calls=[tool_call(name, {"order_id": "A"})]), text("ok"))
    session = session_for(llm, ex, functions)
    for _ in range(4):
        await collect(session.turn("again"))
    assert len(server.received) == 4


async def test_interruption_keeps_the_sent_function_and_a_valid_history(llm, ex, server):
    slow = http_fn(server, path="/slow?ms=300")
    llm.push(
        Reply(
            tool_calls=[tool_call("check_order", {"order_id": "A"}, id="call_x")],
            hold_after_tool_args_s=2.0,
        ),
        text("Now, about your new question."),
    )
    session = session_for(llm, ex, [slow])
    events = []
    async for ev in session.turn("order A"):
        events.append(ev)
        if isinstance(ev, FunctionStarted):
            session.interrupt()  # the caller barges in while the LLM is still streaming
    assert isinstance(events[-1], TurnInterrupted)
    assert events[-1].pending_functions == ["check_order"]
    events2 = await collect(session.turn("actually, something else"))
    assert len(server.received) == 1  # not re-sent
    assert of(FunctionFinished, events2)[0].tool_call_id == "call_x"
    msgs = llm.requests[1]["messages"]
    roles = [m["role"] for m in msgs]
    assert roles[-3:] == ["assistant", "tool", "user"]
    assert msgs[-3]["tool_calls"][0]["id"] == "call_x"
    assert msgs[-2]["tool_call_id"] == "call_x"
    assert json.loads(msgs[-2]["content"])["slow"] is True
    assert msgs[-1]["content"] == "actually, something else"


async def test_interrupted_text_is_kept_as_what_was_said(llm, ex, server):
    llm.push(
        Reply(text="Let me tell you a very long story about orders", chunk_size=5, delay_s=0.05),
        text("Sure."),
    )
    session = session_for(llm, ex, [http_fn(server)])
    said = []
    async for ev in session.turn("hello"):
        if isinstance(ev, AgentTextDelta):
            said.append(ev.text)
            if len(said) == 2:
                session.interrupt()
    await collect(session.turn("stop"))
    history = llm.requests[1]["messages"]
    assert history[-2]["role"] == "assistant"
    assert history[-2]["content"].startswith("".join(said))
    assert len(history[-2]["content"]) < len("Let me tell you a very long story about orders")


async def test_llm_error_is_an_event_and_the_call_goes_on(llm, ex, server):
    llm.push(error_reply(500, "overloaded"), text("Back again."))
    session = session_for(llm, ex, [http_fn(server)])
    events = await collect(session.turn("hello"))
    assert [type(e) for e in events] == [ErrorEvent, TurnFinished]
    err = events[0]
    assert err.message == "the LLM request failed"
    assert err.detail == f"HTTP 500 from {llm.base_url}/chat/completions: overloaded"
    events = await collect(session.turn("hello?"))
    assert of(AgentMessage, events)[0].text == "Back again."
    assert [m["content"] for m in llm.requests[1]["messages"] if m["role"] == "user"] == [
        "hello",
        "hello?",
    ]


async def test_an_unreachable_llm_is_an_event_naming_the_endpoint(ex, server):
    with socket.socket() as bound:  # bound, never listening: connecting is refused
        bound.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{bound.getsockname()[1]}/v1"
        doc = {
            "llm": {"model": "m", "base_url": base_url, "max_retries": 0},
            "functions": [http_fn(server)],
        }
        async with CallSession(load_agent(doc), executor=ex) as session:
            events = await collect(session.turn("hello"))
            assert [type(e) for e in events] == [ErrorEvent, TurnFinished]
            assert events[0].message == "the LLM request failed"
            assert (
                events[0].detail == f"cannot reach {base_url}/chat/completions: connection refused"
            )
            assert not session.ended  # the call goes on; the next turn tries again


async def test_an_llm_that_stops_answering_is_a_timeout_event(llm, ex, server):
    llm.push(text("too late", delay_before_s=5.0), text("Here now."))
    session = session_for(llm, ex, [http_fn(server)], llm_timeout_s=0.3)
    events = await collect(session.turn("hello"))
    assert [type(e) for e in events] == [ErrorEvent, TurnFinished]
    assert events[0].detail == f"no answer from {llm.base_url}/chat/completions within 0.3 s"
    events = await collect(session.turn("hello?"))
    assert of(AgentMessage, events)[0].text == "Here now."


async def test_unknown_function_name_lists_the_real_ones(llm, ex, server):
    llm.push(Reply(tool_calls=[tool_call("check_oder", {"order_id": "1"})]), text("oops"))
    session = session_for(llm, ex, [http_fn(server)])
    events = await collect(session.turn("x"))
    result = of(FunctionFinished, events)[0].result
    assert result.error == "unknown_function"
    assert "check_order" in result.content


# ------------------------------------------------------------------------------ builtins


def builtin(name: str, kind: str, **action: Any) -> dict[str, Any]:
    props = action.pop("properties", {})
    return {
        "name": name,
        "description": f"{name} builtin",
        "parameters": {"type": "object", "properties": props},
        "action": {"type": "builtin", "builtin": kind, **action},
    }


async def test_end_call_says_goodbye_and_ends(llm, ex):
    llm.push(Reply(tool_calls=[tool_call("end_call", {})]))
    session = session_for(
        llm, ex, [builtin("end_call", "end_call", message="Bye {customer_name}!")]
    )
    events = await collect(session.turn("bye"))
    ended = of(CallEnded, events)[0]
    assert ended.message == "Bye Ana!"
    assert session.ended
    assert len(llm.requests) == 1
    after = await collect(session.turn("hello?"))
    assert isinstance(after[0], ErrorEvent)


async def test_transfer_fires_webhook_then_requests_transfer(llm, ex):
    with running_server() as hook:
        fn = builtin(
            "transfer",
            "transfer_call",
            transfer_number="+14155550100",
            properties={"reason": {"type": "string", "description": "why"}},
            pre_call_webhook_url=f"{hook.url}/echo",
            pre_call_webhook_param={"transfer_reason": "%(reason)s"},
        )
        llm.push(Reply(tool_calls=[tool_call("transfer", {"reason": "billing dispute"})]))
        session = session_for(llm, ex, [fn], context=CallContext(call_sid="CA1"))
        events = await collect(session.turn("human please"))
        transfer = of(TransferRequested, events)[0]
        assert (transfer.number, transfer.reason, transfer.call_sid) == (
            "+14155550100",
            "billing dispute",
            "CA1",
        )
        # Delivered before the transfer was requested: no draining needed.
        assert [r.json["transfer_reason"] for r in hook.received] == ["billing dispute"]
    assert session.ended


async def test_transfer_number_chosen_by_llm_must_be_allowed(llm, ex):
    fn = builtin(
        "transfer",
        "transfer_call",
        allowed_numbers=["+14155550100", "+14155550101"],
        properties={"number": {"type": "string", "enum": ["+14155550100", "+14155550101"]}},
    )
    llm.push(
        Reply(tool_calls=[tool_call("transfer", {"number": "+19000000000"})]),
        text("I can't do that."),
    )
    session = session_for(llm, ex, [fn])
    events = await collect(session.turn("transfer me to +19000000000"))
    assert of(TransferRequested, events) == []
    assert of(FunctionFinished, events)[0].result.error == "invalid_arguments"
    assert not session.ended


async def test_send_sms_to_the_caller(llm, ex):
    fn = builtin(
        "text_me",
        "send_sms",
        message="Your code is %(code)s, {customer_name}",
        properties={"code": {"type": "string", "description": "code"}},
    )
    llm.push(Reply(tool_calls=[tool_call("text_me", {"code": "42"})]), text("Sent."))
    session = session_for(
        llm, ex, [fn], context=CallContext(from_number="+15550001", to_number="+15550002")
    )
    events = await collect(session.turn("text me"))
    sms = of(SmsRequested, events)[0]
    assert (sms.to, sms.from_, sms.body) == ("+15550001", "+15550002", "Your code is 42, Ana")


async def test_welcome_message_renders_variables(llm, ex, server):
    session = session_for(llm, ex, [http_fn(server)], welcome_message="Hi {customer_name}!")
    events = await collect(session.start())
    assert events == [AgentMessage("Hi Ana!")]
    assert session.messages[-1] == {"role": "assistant", "content": "Hi Ana!"}


async def test_concurrent_sessions_share_one_executor(llm, ex, server):
    def answer(request: dict[str, Any]) -> Reply:
        last = request["messages"][-1]
        if last["role"] == "user":
            return Reply(tool_calls=[tool_call("check_order", {"order_id": last["content"]})])
        return text("done " + json.loads(last["content"])["json"]["order_id"])

    for _ in range(20):
        llm.push(answer)
    sessions = [session_for(llm, ex, [http_fn(server)]) for _ in range(10)]
    results = await asyncio.gather(*(collect(s.turn(f"o{i}")) for i, s in enumerate(sessions)))
    finals = sorted(of(AgentMessage, evs)[0].text for evs in results)
    assert finals == sorted(f"done o{i}" for i in range(10))
    assert len({id(s.llm) for s in sessions}) == 1  # one LLM client for all the calls
    assert llm.connections_opened <= 10  # pooled: at most one connection per concurrent call


async def test_a_session_streams_through_the_client_it_is_given(llm, ex, server):
    llm.push(text("Given."))
    async with LLMClient(llm.base_url, "sk-given", max_retries=0) as client:
        agent = load_agent(agent_doc(llm, [http_fn(server)]))
        async with CallSession(agent, executor=ex, llm=client) as session:
            events = await collect(session.turn("hi"))
        assert of(AgentMessage, events) == [AgentMessage("Given.")]
        assert session.llm is client
        assert client.is_open  # the session does not close a client it did not make
    assert llm.request_headers[0]["authorization"] == "Bearer sk-given"


async def test_pre_call_functions_shape_the_prompt_and_variables(llm, ex, server):
    pre = {
        "name": "load_profile",
        "phase": "pre_call",
        "parameters": {
            "type": "object",
            "properties": {"from_number": {"type": "string"}},
            "required": ["from_number"],
        },
        "action": {
            "type": "http",
            "method": "GET",
            "url": f"{server.url}/profile",
            "param": {"phone": "%(from_number)s"},
        },
    }
    llm.push(text("Hello Bruce."))
    session = session_for(
        llm,
        ex,
        [pre, http_fn(server)],
        context=CallContext(from_number="+1555"),
        welcome_message="Hi {customer_name}!",
    )
    events = await collect(session.start())
    assert [type(e) for e in events] == [FunctionStarted, FunctionFinished, AgentMessage]
    assert events[-1].text == "Hi Bruce!"
    assert server.received[0].query == {"phone": ["+1555"]}
    await collect(session.turn("hello"))
    assert llm.requests[0]["messages"][0]["content"] == "VIP Bruce (gold), caller +1555."
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == [
        "check_order"
    ]  # pre-call ones are not tools


async def test_failing_pre_call_function_is_reported_and_the_call_goes_on(llm, ex, server):
    pre = {
        "name": "load_profile",
        "phase": "pre_call",
        "parameters": {"type": "object", "properties": {}},
        "action": {"type": "http", "method": "GET", "url": f"{server.url}/status/503"},
    }
    session = session_for(llm, ex, [pre], welcome_message="Hi {customer_name}!")
    events = await collect(session.start())
    assert not of(FunctionFinished, events)[0].result.ok
    assert events[-1] == AgentMessage("Hi Ana!")


async def test_post_call_javascript_gets_the_transcript_after_hang_up(llm, ex, server):
    from voicefn.sandbox.python import check_host

    if not check_host().full:
        pytest.skip("needs bubblewrap + user namespaces")
    post = {
        "name": "pushToCrm",
        "phase": "post_call",
        "action": {
            "type": "javascript",
            "code": "async function pushToCrm(data) {\n"
            f"  const r = await axios.post('{server.url}/echo', {{lines: data.transcript.length, first: _.get(data, 'transcript[0].text'), tier: data.variables.tier}});\n"
            "  return {status: 'success', sent: r.data.json};\n}\n",
        },
    }
    llm.push(text("Hello Ana."))
    session = session_for(
        llm, ex, [http_fn(server), post], context=CallContext(variables={"tier": "gold"})
    )
    await collect(session.turn("hi there"))
    events = await collect(session.finish())
    result = of(FunctionFinished, events)[0].result
    assert result.ok, result.content
    assert server.received[-1].json == {"lines": 2, "first": "hi there", "tier": "gold"}
    assert session.transcript() == [
        {"role": "caller", "text": "hi there"},
        {"role": "agent", "text": "Hello Ana."},
    ]
