"""voicefn functions as LiveKit Agents tools, run by LiveKit's own AgentSession (text mode: no
room, no audio) and checked with its RunResult assertions.

The LLM is LiveKit's own inference client pointed at voicefn's ScriptedLLM (the OpenAI wire
format on loopback); functions call a real HTTP API on loopback; a transfer goes to a loopback
server speaking LiveKit's SIP API and an SMS to one speaking Twilio's. Nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("livekit.agents")

from adapters_support import (
    EXAMPLE_CALL,
    EXAMPLES,
    FILLERS,
    NEVER,
    SipAPI,
    StoreAPI,
    example_store,
    normalized,
    store_agent,
)
from livekit import api
from livekit.agents import Agent, AgentSession, CloseEvent, RunResult, inference
from livekit.agents.llm import ChatMessage, FunctionCall, FunctionCallOutput
from livekit.agents.testing import fake_job_context
from livekit.agents.voice.io import TextOutput

import voicefn
from voicefn.integrations.livekit import VoicefnToolset, call_context, sip_call_context
from voicefn.telephony.twilio import TwilioTelephony
from voicefn.testing import Reply, ScriptedLLM, text, tool_call
from voicefn.testing.twilio_server import FakeTwilio

CALL = voicefn.CallContext(call_sid="CA-lk-1", from_number="+15550100", to_number="+15550199")


class Speaker(TextOutput):
    """Where the agent's speech goes (the room's transcription output in production)."""

    def __init__(self) -> None:
        super().__init__(label="speaker", next_in_chain=None)
        self.lines: list[str] = []
        self._current: list[str] = []
        self.said = asyncio.Event()
        self.waiting_for: tuple[str, ...] = ()

    async def capture_text(self, text: str) -> None:
        self._current.append(text)

    def flush(self) -> None:
        line = "".join(self._current)
        self._current = []
        if line:
            self.lines.append(line)
            if any(words in line for words in self.waiting_for):
                self.said.set()

    def expect(self, *words: str) -> asyncio.Event:
        """Set once a line with any of ``words`` is said."""
        self.waiting_for, self.said = words, asyncio.Event()
        return self.said


@pytest.fixture
async def executor() -> AsyncIterator[voicefn.Executor]:
    async with voicefn.Executor(allow_private_network=True) as ex:
        yield ex


@pytest.fixture
async def llm(scripted_llm: ScriptedLLM) -> AsyncIterator[inference.LLM]:
    # LiveKit's own OpenAI-wire client; the key only signs a token nobody checks.
    client = inference.LLM(
        "test-model", base_url=scripted_llm.base_url, api_key="k", api_secret="s" * 32
    )
    yield client
    await client.aclose()


async def start(
    llm: inference.LLM, tools: VoicefnToolset, speaker: Speaker | None = None
) -> AgentSession[Any]:
    session: AgentSession[Any] = AgentSession(llm=llm)
    if speaker is not None:
        session.output.transcription = speaker
    await session.start(Agent(instructions=tools.instructions, tools=[tools]))
    return session


def ask(session: AgentSession[Any], words: str) -> RunResult[None]:
    """The caller says ``words``; the run records what the agent did."""
    run: RunResult[None] = session.run(user_input=words)
    return run


def closed(session: AgentSession[Any]) -> asyncio.Future[CloseEvent]:
    """Done when the session closes."""
    future: asyncio.Future[CloseEvent] = asyncio.get_running_loop().create_future()

    def on_close(ev: CloseEvent) -> None:
        if not future.done():
            future.set_result(ev)

    session.on("close", on_close)
    return future


def outputs(session: AgentSession[Any], call_id: str) -> list[FunctionCallOutput]:
    return [
        i
        for i in session.history.items
        if isinstance(i, FunctionCallOutput) and i.call_id == call_id
    ]


async def test_a_tool_call_runs_the_http_function_says_the_filler_and_answers_with_the_result(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    tools = VoicefnToolset(agent, executor=executor, context=CALL)
    speaker = Speaker()
    filler = speaker.expect("checking your order")
    scripted_llm.push(
        Reply(tool_calls=[tool_call("check_order_status", {"order_id": "ORD-1"}, id="c1")]),
        text("Your order ORD-1 has shipped with UPS."),
    )
    store_api.hold()  # the API answers only once the filler has been said
    async with await start(llm, tools, speaker) as session:
        run = ask(session, "Where is my order ORD-1?")
        await asyncio.wait_for(filler.wait(), NEVER)
        store_api.release()
        result = await run

        result.expect.next_event().is_function_call(
            name="check_order_status", arguments={"order_id": "ORD-1"}
        )
        output = result.expect.next_event().is_function_call_output(is_error=False).event().item
        result.expect.next_event().is_message(role="assistant")
        result.expect.no_more_events()

    # The real request: context-filled value sent, LLM never asked for it.
    (req,) = store_api.received
    assert req.query == {"order_id": "ORD-1", "phone": "+15550100"}
    assert req.headers["X-Voicefn-Call-Id"] == "CA-lk-1"
    tools_seen = {t["function"]["name"]: t["function"] for t in scripted_llm.requests[0]["tools"]}
    assert set(tools_seen["check_order_status"]["parameters"]["properties"]) == {"order_id"}
    assert tools_seen["check_order_status"]["parameters"]["required"] == ["order_id"]
    # JSON text goes back (not a Python repr), and the LLM's next request carries it.
    assert json.loads(output.output) == {"order_id": "ORD-1", "status": "shipped", "carrier": "UPS"}
    tool_msg = scripted_llm.requests[1]["messages"][-1]
    assert tool_msg["role"] == "tool"
    assert json.loads(tool_msg["content"])["carrier"] == "UPS"
    # Said: the filler (with the agent's variable), then the answer; the filler is not history.
    assert speaker.lines == [
        "One moment there, checking your order.",
        "Your order ORD-1 has shipped with UPS.",
    ]
    assert not any(
        isinstance(i, ChatMessage) and "checking your order" in (i.text_content or "")
        for i in session.history.items
    )


async def test_no_filler_when_the_agent_already_spoke_in_that_response(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    tools = VoicefnToolset(agent, executor=executor, context=CALL)
    speaker = Speaker()
    spoke = speaker.expect("let me look")
    scripted_llm.push(
        Reply(
            text="Sure, let me look that up.",
            tool_calls=[tool_call("check_order_status", {"order_id": "ORD-1"}, id="c1")],
        ),
        text("It has shipped."),
    )
    store_api.hold()
    async with await start(llm, tools, speaker) as session:
        run = ask(session, "Where is ORD-1?")
        await asyncio.wait_for(spoke.wait(), NEVER)
        await session.wait_for_idle()  # when a filler would be said
        store_api.release()
        await run
    assert speaker.lines == ["Sure, let me look that up.", "It has shipped."]


async def test_one_filler_for_calls_made_together(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    tools = VoicefnToolset(agent, executor=executor, context=CALL)
    speaker = Speaker()
    fillers = ("One moment there, checking your order.", "Booking that for you.")
    filler = speaker.expect(*fillers)
    scripted_llm.push(
        Reply(
            tool_calls=[
                tool_call("check_order_status", {"order_id": "ORD-1"}, id="c1"),
                tool_call("book_slot", {"slot": "9am"}, id="c2"),
            ]
        ),
        text("Shipped, and booked."),
    )
    store_api.hold()
    async with await start(llm, tools, speaker) as session:
        run = ask(session, "Where is ORD-1? And book 9am.")
        await asyncio.wait_for(filler.wait(), NEVER)
        await session.wait_for_idle()  # when the second call's filler would be said
        store_api.release()
        await run
    assert len(speaker.lines) == 2
    assert speaker.lines[0] in fillers  # one of the two, not both
    assert speaker.lines[1] == "Shipped, and booked."
    assert store_api.count("POST", "/bookings") == 1


JS_REFUSED = """
/** Look up the caller's loyalty points. */
async function loyalty_points(data) {
  const r = await axios.get("http://127.0.0.1:9/points?api_key=sk_live_42");
  return r.data;
}
"""


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the sandbox needs bubblewrap")
async def test_a_code_functions_refused_request_reaches_the_llm_in_its_short_form(
    scripted_llm: ScriptedLLM, llm: inference.LLM
) -> None:
    """The LLM reads what it can act on (no URL, no flags); the developer's detail, with the
    request and the engine's fix, stays in the result's data."""
    document = {
        "name": "loyalty",
        "system_prompt": "You help callers.",
        "functions": [
            {
                "name": "loyalty_points",
                "description": "The caller's loyalty points.",
                "phase": "in_call",
                "parameters": {"type": "object", "properties": {}},
                "action": {"type": "javascript", "code": JS_REFUSED, "timeout_ms": 20000},
            }
        ],
    }
    scripted_llm.push(
        Reply(tool_calls=[tool_call("loyalty_points", {}, id="p1")]),
        text("I cannot reach the points service."),
    )
    async with voicefn.Executor() as strict:  # loopback is refused by default
        tools = VoicefnToolset(voicefn.load_agent(document), executor=strict, context=CALL)
        async with await start(llm, tools) as session:
            result = await ask(session, "How many points do I have?")
            result.expect.skip_next_event_if(type="function_call")
            out = result.expect.next_event().is_function_call_output(is_error=True).event().item
    assert "cannot be reached from here" in out.output
    assert "127.0.0.1" not in out.output
    assert "allow-private-network" not in out.output
    assert "sk_live_42" not in out.output
    assert scripted_llm.requests[1]["messages"][-1]["content"] == out.output


async def test_an_error_result_is_a_tool_error_with_the_short_message(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    tools = VoicefnToolset(agent, executor=executor, context=CALL)
    scripted_llm.push(
        Reply(tool_calls=[tool_call("check_stock", {}, id="s1")]),
        text("The stock service is down."),
        Reply(tool_calls=[tool_call("check_order_status", {"order_id": "ORD-404"}, id="s2")]),
        text("I cannot find that order."),
        Reply(tool_calls=[tool_call("check_order_status", {}, id="s3")]),
        text("What is your order number?"),
    )
    async with await start(llm, tools) as session:
        result = await ask(session, "Is the blue mug in stock?")
        result.expect.next_event().is_function_call(name="check_stock")
        down = result.expect.next_event().is_function_call_output(is_error=True).event().item
        result.expect.next_event().is_message(role="assistant")

        result = await ask(session, "And order ORD-404?")
        result.expect.skip_next_event_if(type="function_call")
        missing = result.expect.next_event().is_function_call_output(is_error=True).event().item

        result = await ask(session, "Where is my order?")
        result.expect.skip_next_event_if(type="function_call")
        asked = result.expect.next_event().is_function_call_output(is_error=True).event().item

    assert down.output == "Endpoint returned 503: down for maintenance"
    assert missing.output == "Endpoint returned 404: Order ORD-404 not found"
    assert asked.output.startswith("Nothing was sent. Ask the caller for: order_id")
    assert store_api.count("GET", "/orders") == 1  # nothing is sent without the order id
    # What the LLM read is that message (LiveKit sends it as the tool result).
    assert scripted_llm.requests[1]["messages"][-1]["content"] == down.output


async def test_a_side_effecting_function_sent_before_a_barge_in_is_not_sent_again(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    tools = VoicefnToolset(agent, executor=executor, context=CALL)
    booking = {"slot": "tomorrow 9am"}
    scripted_llm.push(
        Reply(tool_calls=[tool_call("book_slot", booking, id="b1")]),
        # after the barge-in, the LLM books the same slot again
        Reply(tool_calls=[tool_call("book_slot", booking, id="b2")]),
        text("You are booked for tomorrow at 9am, booking BK-7."),
    )
    store_api.hold()
    async with await start(llm, tools) as session:
        first = ask(session, "Book tomorrow 9am please.")
        await asyncio.wait_for(store_api.arrived.wait(), NEVER)
        session.interrupt()  # the caller barges in while the booking is on its way
        store_api.release()
        await first
        result = await ask(session, "Sorry, did that go through?")
        repeat = result.expect.next_event().is_function_call(name="book_slot").event().item
        assert repeat.call_id == "b2"
        again = result.expect.next_event().is_function_call_output(is_error=False).event().item
        result.expect.next_event().is_message(role="assistant")

        assert store_api.count("POST", "/bookings") == 1
        # The first result is in the history exactly once, the repeat reads it with a note.
        (landed,) = outputs(session, "b1")
        assert json.loads(landed.output) == {"booking_id": "BK-7", "slot": "tomorrow 9am"}
        assert json.loads(again.output) == {
            "note": "Already done earlier in this call with the same values; not sent again.",
            "result": {"booking_id": "BK-7", "slot": "tomorrow 9am"},
        }
        calls = [i for i in session.history.items if isinstance(i, FunctionCall)]
        assert [c.call_id for c in calls] == ["b1", "b2"]
        # The barge-in took: nobody asked the LLM to answer the first booking's result.
        roles = [m["role"] for m in scripted_llm.requests[-1]["messages"]]
        assert roles == ["system", "user", "assistant", "tool", "user", "assistant", "tool"]
        assert len(scripted_llm.requests) == 3


async def test_end_call_says_the_goodbye_and_ends_the_session(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    tools = VoicefnToolset(
        agent, executor=executor, context=voicefn.CallContext(variables={"customer_name": "Ana"})
    )
    speaker = Speaker()
    scripted_llm.push(Reply(tool_calls=[tool_call("end_call", {}, id="e1")]))
    session = await start(llm, tools, speaker)
    ended = closed(session)
    ask(session, "That's all, bye!")
    await asyncio.wait_for(ended, NEVER)

    assert speaker.lines == ["Goodbye Ana, thanks for calling!"]
    assert len(scripted_llm.requests) == 1  # the goodbye is ours: the LLM is not asked again
    (out,) = outputs(session, "e1")
    assert not out.is_error
    await session.aclose()


async def test_transfer_call_transfers_the_sip_participant_to_the_configured_number(
    scripted_llm: ScriptedLLM,
    llm: inference.LLM,
    store_api: StoreAPI,
    sip_api: SipAPI,
    executor: voicefn.Executor,
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    async with api.LiveKitAPI(sip_api.url, "key", "s" * 32, failover=False) as lkapi:
        tools = VoicefnToolset(
            agent,
            executor=executor,
            context=CALL,
            livekit_api=lkapi,
            participant_identity="sip_+15550100",
            room_name="call-room",
        )
        # The LLM tries to dial a number of its own: the schema has no such parameter and the
        # configured number is used.
        scripted_llm.push(
            Reply(
                text="Transferring you now.",
                tool_calls=[tool_call("transfer_to_support", {"number": "+19990000000"}, id="t1")],
            )
        )
        session = await start(llm, tools)
        ended = closed(session)
        result = await ask(session, "Let me talk to a person.")
        await asyncio.wait_for(ended, NEVER)

    (transfer,) = sip_api.transfers
    assert transfer.transfer_to == "tel:+15550001111"
    assert transfer.participant_identity == "sip_+15550100"
    assert transfer.room_name == "call-room"
    schema = next(
        t["function"]
        for t in scripted_llm.requests[0]["tools"]
        if t["function"]["name"] == "transfer_to_support"
    )
    assert "number" not in schema["parameters"]["properties"]
    outs = [e.item for e in result.events if isinstance(e.item, FunctionCallOutput)]
    assert [o.is_error for o in outs] == [False]
    assert len(scripted_llm.requests) == 1


async def test_a_transfer_the_trunk_refuses_is_an_error_the_llm_reads(
    scripted_llm: ScriptedLLM,
    llm: inference.LLM,
    store_api: StoreAPI,
    sip_api: SipAPI,
    executor: voicefn.Executor,
) -> None:
    sip_api.fail = True
    agent = voicefn.load_agent(store_agent(store_api.url))
    async with api.LiveKitAPI(sip_api.url, "key", "s" * 32, failover=False) as lkapi:
        tools = VoicefnToolset(
            agent, executor=executor, context=CALL, livekit_api=lkapi,
            participant_identity="sip_caller", room_name="call-room",
        )  # fmt: skip
        scripted_llm.push(
            Reply(tool_calls=[tool_call("transfer_to_support", {}, id="t1")]),
            text("Sorry, I could not transfer you."),
        )
        async with await start(llm, tools) as session:
            result = await ask(session, "A person please.")
            result.expect.next_event().is_function_call(name="transfer_to_support")
            out = result.expect.next_event().is_function_call_output(is_error=True).event().item
            result.expect.next_event().is_message(role="assistant")
    assert len(sip_api.transfers) == 1
    assert "did not go through" in out.output


async def test_send_sms_goes_through_the_configured_telephony(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    with FakeTwilio() as twilio:
        tel = TwilioTelephony(twilio.account_sid, twilio.auth_token, base_url=twilio.base_url)
        tools = VoicefnToolset(agent, executor=executor, context=CALL, telephony=tel)
        scripted_llm.push(
            Reply(tool_calls=[tool_call("text_tracking_link", {"order_id": "ORD-1"}, id="m1")]),
            text("I have texted you the link."),
        )
        async with await start(llm, tools) as session:
            result = await ask(session, "Can you text me the tracking link?")
            result.expect.next_event().is_function_call(name="text_tracking_link")
            result.expect.next_event().is_function_call_output(is_error=False)
            result.expect.next_event().is_message(role="assistant")
        (sms,) = [r for r in twilio.requests if r.path.endswith("/Messages.json")]
    assert sms.form["To"] == "+15550100"  # the caller
    assert sms.form["From"] == "+15550199"  # the number they dialled
    assert sms.form["Body"] == "Track ORD-1 at https://track.example.com/ORD-1"


async def test_send_sms_without_telephony_tells_the_llm_it_cannot(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    tools = VoicefnToolset(agent, executor=executor, context=CALL)
    scripted_llm.push(
        Reply(tool_calls=[tool_call("text_tracking_link", {"order_id": "ORD-1"})]),
        text("Sorry, I cannot text you."),
    )
    async with await start(llm, tools) as session:
        result = await ask(session, "Text me the link.")
        result.expect.skip_next_event_if(type="function_call")
        out = result.expect.next_event().is_function_call_output(is_error=True).event().item
    assert out.output == "Text messages cannot be sent on this call."


async def test_the_call_context_comes_from_the_job_and_the_sip_participant(
    store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    with fake_job_context(job_metadata='{"customer_name": "Bruce", "tier": "gold"}') as job:
        ctx = call_context()
        tools = VoicefnToolset(
            agent, executor=executor, context=voicefn.CallContext(variables={"tier": "vip"})
        )
        await tools.setup()
    job._tempdir.cleanup()  # a JobContext makes a temporary folder that only a worker removes
    assert ctx.variables == {"customer_name": "Bruce", "tier": "gold"}
    assert ctx.call_sid == job.job.room.name  # no SIP participant: the room names the call
    # The job's values under the ones passed in, the agent's defaults under both.
    assert tools.context.variables == {"customer_name": "Bruce", "tier": "vip"}
    assert tools.context.agent_id == "store-agent"
    assert tools.instructions == "You are Sam from Acme, speaking to Bruce."
    assert tools.welcome_message == "Hi Bruce, this is Sam from Acme."

    inbound = sip_call_context(
        {
            "sip.callID": "SCL_abc",
            "sip.phoneNumber": "+15550100",
            "sip.trunkPhoneNumber": "+15550199",
            "sip.ruleID": "SDR_1",
            "lk.foo": "x",
            "customer_name": "Priya",
        },
        room_name="room-1",
        variables={"customer_name": "from metadata", "tier": "gold"},
    )
    assert (inbound.call_sid, inbound.from_number, inbound.to_number) == (
        "SCL_abc", "+15550100", "+15550199",
    )  # fmt: skip
    assert inbound.variables == {"customer_name": "Priya", "tier": "gold"}
    outbound = sip_call_context(
        {"sip.callID": "SCL_out", "sip.phoneNumber": "+15550100", "sip.trunkPhoneNumber": "+1555"}
    )
    assert (outbound.from_number, outbound.to_number) == ("+1555", "+15550100")


async def test_context_filled_parameters_are_removed_and_a_list_of_functions_works(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    functions = voicefn.load_agent(store_agent(store_api.url)).functions[:2]
    tools = VoicefnToolset(functions, executor=executor, context=CALL)
    schemas = {t.info.raw_schema["name"]: t.info.raw_schema for t in tools.function_tools()}
    assert set(schemas) == {"check_order_status", "book_slot"}
    assert "from_number" not in schemas["check_order_status"]["parameters"]["properties"]
    without = VoicefnToolset(functions, executor=executor)  # no context: the LLM must ask
    schema = without.function_tools()[0].info.raw_schema
    assert "from_number" in schema["parameters"]["properties"]
    post_call = voicefn.Function.model_validate(
        {"name": "summary", "phase": "post_call", "action": {"method": "POST", "url": "http://x"}}
    )
    with pytest.raises(ValueError, match="summary is a post_call function"):
        VoicefnToolset([post_call], executor=executor)


def test_without_the_extra_the_import_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "livekit" or m.startswith("livekit.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if livekit-agents were not installed
    monkeypatch.delitem(sys.modules, "voicefn.integrations.livekit")
    with pytest.raises(ImportError, match=r'pip install "voicefn\[livekit\]"') as caught:
        importlib.import_module("voicefn.integrations.livekit")
    assert (caught.value.name or "").split(".")[0] == "livekit"


def test_the_example_runs_a_text_call_with_the_scripted_llm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(EXAMPLES))
    livekit_agent = importlib.import_module("livekit_agent")

    with example_store(tmp_path) as agent_file:
        code = livekit_agent.main(
            [
                "text",
                "--script", str(EXAMPLES / "caller_script.txt"),
                "--llm-script", str(EXAMPLES / "llm_script.yaml"),
                "--agent", str(agent_file),
                "--allow-private-network",
            ]
        )  # fmt: skip
    assert code == 0
    printed = normalized(capsys.readouterr().out)
    # LiveKit says a filler only while the function is still running when the agent is idle:
    # against a local API that is a race, so fillers are left out of the comparison.
    assert [line for line in printed if line not in FILLERS] == EXAMPLE_CALL
