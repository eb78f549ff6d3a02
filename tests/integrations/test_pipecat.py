"""voicefn functions registered with a Pipecat LLM service, run in Pipecat pipelines with its own
test utilities (``pipecat.tests.utils.run_test``) and context aggregators, offline.

The LLM service is Pipecat's own ``OpenAILLMService`` pointed at voicefn's ScriptedLLM (the
OpenAI wire format on loopback); functions call a real HTTP API on loopback; transfers and SMS go
to a loopback server speaking Twilio's API. The one stand-in is the TTS (``Speaker``), which
records what it is asked to say.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

pytest.importorskip("pipecat")

from adapters_support import (
    EXAMPLE_CALL,
    EXAMPLES,
    FILLERS,
    NEVER,
    StoreAPI,
    example_store,
    normalized,
    store_agent,
)

with warnings.catch_warnings():
    # pipecat.audio imports audioop, deprecated in 3.11 (pipecat uses audioop-lts on 3.13)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pipecat.frames.frames import (
        EndFrame,
        Frame,
        FunctionCallInProgressFrame,
        InterruptionFrame,
        LLMRunFrame,
        LLMTextFrame,
        TTSSpeakFrame,
    )
    from pipecat.observers.base_observer import BaseObserver, FramePushed
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.llm_service import LLMService
    from pipecat.services.openai.llm import OpenAILLMService
    from pipecat.tests.utils import run_test
    from pipecat.workers.runner import WorkerRunner

import voicefn
from voicefn.integrations.pipecat import register
from voicefn.telephony.twilio import TwilioTelephony
from voicefn.testing import Reply, ScriptedLLM, tool_call
from voicefn.testing.twilio_server import FakeTwilio

CALL_SID = "CA" + "0" * 32
CALL = voicefn.CallContext(
    call_sid=CALL_SID,
    from_number="+15550100",
    to_number="+15550199",
    variables={"customer_name": "Bruce"},
)
END = Reply(tool_calls=[tool_call("end_call", {})])


class Speaker(FrameProcessor):
    """Stands where the TTS stands: records the lines it is asked to speak, passes frames on."""

    def __init__(self) -> None:
        super().__init__()
        self.spoken: list[TTSSpeakFrame] = []
        self.words: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSSpeakFrame):
            self.spoken.append(frame)
        elif isinstance(frame, LLMTextFrame):
            self.words.append(frame.text)
        await self.push_frame(frame, direction)

    @property
    def lines(self) -> list[str]:
        return [f.text for f in self.spoken]


class Watch(BaseObserver):
    """Pipecat observer: the function calls the LLM service started (as it announced them), and
    whether the LLM service has handled an interruption (it passes the frame on after)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, FunctionCallInProgressFrame] = {}
        self.llm_interrupted = asyncio.Event()

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.frame, FunctionCallInProgressFrame):
            self.calls[data.frame.function_name] = data.frame
        elif isinstance(data.frame, InterruptionFrame) and isinstance(data.source, LLMService):
            self.llm_interrupted.set()


@pytest.fixture
async def executor() -> AsyncIterator[voicefn.Executor]:
    async with voicefn.Executor(allow_private_network=True) as ex:
        yield ex


class LLM(OpenAILLMService):
    """Pipecat's OpenAI service, with a client we can close (Pipecat keeps its connections)."""

    def create_client(
        self,
        api_key: Any = None,
        base_url: Any = None,
        organization: Any = None,
        project: Any = None,
        default_headers: Any = None,
        **kwargs: Any,
    ) -> Any:
        self.client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)
        return self.client


@pytest.fixture
async def make_bot(
    scripted_llm: ScriptedLLM, executor: voicefn.Executor
) -> AsyncIterator[Callable[..., Bot]]:
    made: list[Bot] = []

    def make(agent: voicefn.Agent, context: voicefn.CallContext = CALL, **options: Any) -> Bot:
        bot = Bot(scripted_llm, agent, executor, context, **options)
        made.append(bot)
        return bot

    yield make
    for bot in made:
        await bot.llm.client.close()


class Bot:
    """One call: the agent's functions registered with Pipecat's OpenAI service (talking to the
    ScriptedLLM), the LLM context, a pipeline with a Speaker where the TTS goes."""

    def __init__(
        self,
        scripted: ScriptedLLM,
        agent: voicefn.Agent,
        executor: voicefn.Executor,
        context: voicefn.CallContext = CALL,
        **options: Any,
    ) -> None:
        prompt = agent.llm_view(context)["system_prompt"]
        self.llm = LLM(
            api_key="test",
            base_url=scripted.base_url,
            settings=LLM.Settings(model="test-model", system_instruction=prompt),
        )
        self.speaker = Speaker()
        self.watch = Watch()
        self.tools = register(self.llm, agent, executor, context, self.speaker, **options)
        self.context = LLMContext(tools=self.tools)
        aggregators = LLMContextAggregatorPair(self.context)
        self.pipeline = Pipeline(
            [aggregators.user(), self.llm, self.speaker, aggregators.assistant()]
        )

    async def run(self, words: str) -> Sequence[Frame]:
        """The caller says ``words``; runs until the agent ends the call (Pipecat's run_test)."""
        self.context.add_message({"role": "user", "content": words})
        down, _ = await asyncio.wait_for(
            run_test(
                self.pipeline,
                frames_to_send=[LLMRunFrame()],
                send_end_frame=False,  # the agent's end_call ends the pipeline
                start_timeout=NEVER,
                observers=[self.watch],
            ),
            NEVER,
        )
        return down

    def messages(self) -> list[dict[str, Any]]:
        """The LLM context's messages (OpenAI format)."""
        return [dict(m) for m in self.context.get_messages() if isinstance(m, dict)]

    def tool_results(self) -> dict[str, Any]:
        return {
            m["tool_call_id"]: json.loads(m["content"])
            for m in self.messages()
            if m.get("role") == "tool"
        }


async def test_a_tool_call_runs_the_http_function_speaks_the_filler_and_answers_with_the_result(
    scripted_llm: ScriptedLLM, store_api: StoreAPI, make_bot: Callable[..., Bot]
) -> None:
    bot = make_bot(voicefn.load_agent(store_agent(store_api.url)))
    scripted_llm.push(
        Reply(tool_calls=[tool_call("check_order_status", {"order_id": "ORD-1"}, id="c1")]),
        Reply(text="Your order ORD-1 has shipped with UPS.", tool_calls=END.tool_calls),
    )
    down = await bot.run("Where is my order ORD-1?")

    (req,) = store_api.received
    assert req.query == {"order_id": "ORD-1", "phone": "+15550100"}
    assert req.headers["X-Voicefn-Call-Id"] == CALL_SID
    # The LLM saw no from_number parameter; it read the API's JSON and answered with it.
    schema = next(
        t["function"]
        for t in scripted_llm.requests[0]["tools"]
        if t["function"]["name"] == "check_order_status"
    )
    assert set(schema["parameters"]["properties"]) == {"order_id"}
    assert bot.tool_results()["c1"] == {"order_id": "ORD-1", "status": "shipped", "carrier": "UPS"}
    tool_msg = scripted_llm.requests[1]["messages"][-1]
    assert tool_msg["role"] == "tool"
    assert json.loads(tool_msg["content"])["carrier"] == "UPS"
    assert "".join(bot.speaker.words) == "Your order ORD-1 has shipped with UPS."
    # The filler went to the TTS when the call started, outside the context; then the goodbye.
    assert bot.speaker.lines == [
        "One moment Bruce, checking your order.",
        "Goodbye Bruce, thanks for calling!",
    ]
    assert [f.append_to_context for f in bot.speaker.spoken] == [False, True]
    assert "checking your order" not in json.dumps(bot.messages())
    # end_call pushed the frame that ends the pipeline, after the goodbye; no further LLM turn.
    assert isinstance(down[-1], EndFrame)
    assert down.index(bot.speaker.spoken[-1]) < len(down) - 1
    assert len(scripted_llm.requests) == 2


async def test_errors_are_results_the_llm_reads(
    scripted_llm: ScriptedLLM, store_api: StoreAPI, make_bot: Callable[..., Bot]
) -> None:
    bot = make_bot(voicefn.load_agent(store_agent(store_api.url)))
    scripted_llm.push(
        Reply(
            tool_calls=[
                tool_call("check_stock", {}, id="s1"),
                tool_call("check_order_status", {}, id="s2"),
            ]
        ),
        Reply(
            text="The stock service is down. What is your order number?", tool_calls=END.tool_calls
        ),
    )
    await bot.run("Is the mug in stock, and where is my order?")

    results = bot.tool_results()
    assert results["s1"] == {
        "error": "request_failed",
        "reason": "status",
        "status": 503,
        "detail": "Endpoint returned 503",
        "body": {"message": "down for maintenance"},
    }
    assert results["s2"]["error"] == "missing_arguments"
    assert results["s2"]["detail"].startswith("Nothing was sent. Ask the caller for: order_id")
    assert store_api.count("GET", "/orders") == 0
    # What the LLM read in its next request is that JSON, not Pipecat's generic failure text.
    sent = {
        m["tool_call_id"]: m["content"]
        for m in scripted_llm.requests[1]["messages"]
        if m["role"] == "tool"
    }
    assert json.loads(sent["s1"])["detail"] == "Endpoint returned 503"


async def test_registration_carries_each_functions_timeout_and_interruption_behaviour(
    scripted_llm: ScriptedLLM, store_api: StoreAPI, make_bot: Callable[..., Bot]
) -> None:
    agent = voicefn.load_agent(store_agent(store_api.url))
    bot = make_bot(agent)
    scripted_llm.push(
        Reply(
            tool_calls=[
                tool_call("check_order_status", {"order_id": "ORD-1"}, id="r1"),
                tool_call("book_slot", {"slot": "9am"}, id="w1"),
            ]
        ),
        Reply(text="Done.", tool_calls=END.tool_calls),
    )
    await bot.run("Where is ORD-1, and book 9am.")
    started = bot.watch.calls
    assert started["check_order_status"].cancel_on_interruption is True  # a read
    assert started["book_slot"].cancel_on_interruption is False  # a booking is not cancelled
    # Pipecat's registry holds voicefn's timeout (5 s) plus the margin.
    assert bot.llm._functions["check_order_status"].timeout_secs == 7.0
    assert {t.name for t in bot.tools.standard_tools} == {
        f.name for f in agent.functions if f.phase == "in_call"
    }


async def test_a_side_effecting_call_survives_a_barge_in_and_is_not_sent_again(
    scripted_llm: ScriptedLLM, store_api: StoreAPI, make_bot: Callable[..., Bot]
) -> None:
    bot = make_bot(voicefn.load_agent(store_agent(store_api.url)))
    booking = {"slot": "tomorrow 9am"}
    scripted_llm.push(
        Reply(tool_calls=[tool_call("book_slot", booking, id="b1")]),
        Reply(tool_calls=[tool_call("book_slot", booking, id="b2")]),  # asked again after
        Reply(text="You are booked, BK-7.", tool_calls=END.tool_calls),
    )
    store_api.hold()
    worker = PipelineWorker(bot.pipeline, cancel_on_idle_timeout=False, observers=[bot.watch])
    started = asyncio.Event()
    worker.add_event_handler("on_pipeline_started", lambda *_: started.set())
    runner = WorkerRunner()
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), NEVER)
    bot.context.add_message({"role": "user", "content": "Book tomorrow 9am."})
    await worker.queue_frame(LLMRunFrame())
    await asyncio.wait_for(store_api.arrived.wait(), NEVER)
    await worker.queue_frame(InterruptionFrame())  # the caller barges in mid-booking
    await asyncio.wait_for(bot.watch.llm_interrupted.wait(), NEVER)
    store_api.release()
    await asyncio.wait_for(running, NEVER)

    assert store_api.count("POST", "/bookings") == 1
    results = bot.tool_results()
    assert results["b1"] == {"booking_id": "BK-7", "slot": "tomorrow 9am"}
    assert results["b2"] == {
        "note": "Already done earlier in this call with the same values; not sent again.",
        "result": {"booking_id": "BK-7", "slot": "tomorrow 9am"},
    }
    tool_ids = [m["tool_call_id"] for m in bot.messages() if m.get("role") == "tool"]
    assert tool_ids.count("b1") == 1


async def test_transfer_and_sms_go_through_the_configured_telephony(
    scripted_llm: ScriptedLLM, store_api: StoreAPI, make_bot: Callable[..., Bot]
) -> None:
    with FakeTwilio() as twilio:
        tel = TwilioTelephony(twilio.account_sid, twilio.auth_token, base_url=twilio.base_url)
        bot = make_bot(voicefn.load_agent(store_agent(store_api.url)), telephony=tel)
        scripted_llm.push(
            Reply(tool_calls=[tool_call("text_tracking_link", {"order_id": "ORD-1"}, id="m1")]),
            Reply(
                text="Texted. Transferring you now.",
                # the LLM offers a number of its own: the configured one is dialled
                tool_calls=[tool_call("transfer_to_support", {"number": "+19990000000"}, id="t1")],
            ),
        )
        down = await bot.run("Text me the link, then get me a person.")
        requests = list(twilio.requests)

    sms, transfer = requests
    assert sms.path.endswith("/Messages.json")
    assert (sms.form["To"], sms.form["From"]) == ("+15550100", "+15550199")
    assert sms.form["Body"] == "Track ORD-1 at https://track.example.com/ORD-1"
    assert transfer.path.endswith(f"/Calls/{CALL_SID}.json")
    assert "<Dial>+15550001111</Dial>" in transfer.form["Twiml"]
    assert bot.tool_results()["t1"] == {"ok": True, "call": "transferring"}
    assert isinstance(down[-1], EndFrame)  # the call moved: the pipeline ends
    assert len(scripted_llm.requests) == 2


async def test_without_telephony_transfer_and_sms_are_errors_the_llm_reads(
    scripted_llm: ScriptedLLM, store_api: StoreAPI, make_bot: Callable[..., Bot]
) -> None:
    bot = make_bot(voicefn.load_agent(store_agent(store_api.url)))
    scripted_llm.push(
        Reply(
            tool_calls=[
                tool_call("text_tracking_link", {"order_id": "ORD-1"}, id="m1"),
                tool_call("transfer_to_support", {}, id="t1"),
            ]
        ),
        Reply(text="Sorry, I can do neither.", tool_calls=END.tool_calls),
    )
    await bot.run("Text me and transfer me.")
    results = bot.tool_results()
    assert results["m1"] == {
        "error": "sms_unavailable",
        "detail": "Text messages cannot be sent on this call.",
    }
    assert results["t1"] == {
        "error": "transfer_unavailable",
        "detail": "This call cannot be transferred.",
    }


def test_without_the_extra_the_import_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "pipecat" or m.startswith("pipecat.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if pipecat-ai were not installed
    monkeypatch.delitem(sys.modules, "voicefn.integrations.pipecat")
    with pytest.raises(ImportError, match=r'pip install "voicefn\[pipecat\]"') as caught:
        importlib.import_module("voicefn.integrations.pipecat")
    assert (caught.value.name or "").split(".")[0] == "pipecat"


def test_the_example_runs_a_text_call_with_the_scripted_llm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(EXAMPLES))
    pipecat_bot = importlib.import_module("pipecat_bot")

    with example_store(tmp_path) as agent_file:
        code = pipecat_bot.main(
            [
                "--script", str(EXAMPLES / "caller_script.txt"),
                "--llm-script", str(EXAMPLES / "llm_script.yaml"),
                "--agent", str(agent_file),
                "--allow-private-network",
            ]
        )  # fmt: skip
    assert code == 0
    printed = normalized(capsys.readouterr().out)
    assert [line for line in printed if line not in FILLERS] == EXAMPLE_CALL
    # Pipecat speaks each filler when the calls start: after the question, before the answer.
    for filler, question, answer in [
        ("Let me check the status", "where is my order", "has shipped"),
        ("I'm booking that", "Can I book", "You're booked"),
    ]:
        said = [i for i, line in enumerate(printed) if filler in line]
        asked = next(i for i, line in enumerate(printed) if question in line)
        answered = next(i for i, line in enumerate(printed) if answer in line)
        assert len(said) == 1
        assert asked < said[0] < answered
