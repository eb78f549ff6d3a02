"""A Pipecat bot whose function calls are voicefn functions (examples/store_agent.yaml).

Text, with no audio: Pipecat's LLM service, context aggregators and pipeline, one caller line per
turn; what the TTS would say is printed. With the scripted LLM (no key, no network):

    pip install "voicefn[pipecat]"
    python examples/order_api.py &                 # the store API the functions call
    python examples/pipecat_bot.py --script examples/caller_script.txt \\
        --llm-script examples/llm_script.yaml --allow-private-network

or with a real LLM: ``OPENAI_API_KEY=... python examples/pipecat_bot.py --model gpt-4.1-mini
"Where is my order ORD-78234?" --allow-private-network`` (``--base-url`` for any
OpenAI-compatible server).

Voice: ``voice_pipeline()`` below is the same with a transport, STT and TTS; ``bot()`` runs it
under Pipecat's development runner (``pip install "pipecat-ai[webrtc,deepgram,cartesia]"``, then
``python examples/pipecat_bot.py voice`` and open http://localhost:7860).

The part that matters is three lines::

    tools = register(llm, voicefn.load_agent("store_agent.yaml"), executor, context, tts)
    context = LLMContext(tools=tools)
    # ... Pipeline([transport.input(), stt, user_aggregator, llm, tts, transport.output(),
    #               assistant_aggregator])
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from openai.types.chat import ChatCompletionUserMessageParam

with warnings.catch_warnings():  # pipecat.audio imports audioop (deprecated on 3.11-3.12)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pipecat.frames.frames import (
        EndFrame,
        Frame,
        FunctionCallInProgressFrame,
        FunctionCallResultFrame,
        FunctionCallsStartedFrame,
        LLMFullResponseEndFrame,
        LLMFullResponseStartFrame,
        LLMMessagesAppendFrame,
        LLMTextFrame,
        TTSSpeakFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.openai.llm import OpenAILLMService
    from pipecat.workers.runner import WorkerRunner

import voicefn
from voicefn.integrations.pipecat import register
from voicefn.testing import Reply, ScriptedLLM, tool_call

HERE = Path(__file__).resolve().parent
AGENT_FILE = HERE / "store_agent.yaml"


class OpenAILLM(OpenAILLMService):
    """Pipecat's OpenAI service, keeping its HTTP client at hand to close it at the end."""

    def create_client(self, *args: Any, **kwargs: Any) -> Any:
        self.client = super().create_client(*args, **kwargs)  # type: ignore[no-untyped-call]
        return self.client


def openai_llm(agent: voicefn.Agent, context: voicefn.CallContext, **client: Any) -> OpenAILLM:
    """Pipecat's OpenAI service, with the agent's system prompt for this call."""
    prompt = agent.llm_view(context)["system_prompt"]
    model = client.pop("model", None) or agent.llm.model or "gpt-4.1-mini"
    return OpenAILLM(settings=OpenAILLM.Settings(model=model, system_instruction=prompt), **client)


def voice_pipeline(
    transport: Any,
    stt: FrameProcessor,
    tts: FrameProcessor,
    llm: OpenAILLMService,
    agent: voicefn.Agent,
    executor: voicefn.Executor,
    context: voicefn.CallContext,
) -> tuple[Pipeline, LLMContext]:
    """The voice pipeline: voicefn's functions registered with ``llm``, fillers through ``tts``."""
    # When the pipeline ends, the agent's post-call work runs once (extraction, post-call
    # functions, the agent webhook signed with this Standard Webhooks secret, if set).
    tools = register(
        llm, agent, executor, context, tts, signing_secret=os.environ.get("VOICEFN_WEBHOOK_SECRET")
    )
    llm_context = LLMContext(tools=tools)
    aggregators = LLMContextAggregatorPair(llm_context)
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            aggregators.user(),
            llm,
            tts,
            transport.output(),
            aggregators.assistant(),
        ]
    )
    return pipeline, llm_context


async def bot(runner_args: Any) -> None:
    """Pipecat's development runner calls this for each session (``voice`` below)."""
    from pipecat.runner.utils import create_transport
    from pipecat.services.cartesia.tts import CartesiaTTSService
    from pipecat.services.deepgram.stt import DeepgramSTTService
    from pipecat.transports.base_transport import TransportParams

    params = {"webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True)}
    transport = await create_transport(runner_args, params)
    agent = voicefn.load_agent(AGENT_FILE)
    context = voicefn.CallContext()  # a telephony transport knows the call id and numbers
    async with voicefn.Executor(allow_private_network=True) as executor:
        pipeline, _ = voice_pipeline(
            transport,
            DeepgramSTTService(api_key=os.environ["DEEPGRAM_API_KEY"]),
            CartesiaTTSService(
                api_key=os.environ["CARTESIA_API_KEY"],
                voice_id=os.environ.get(
                    "CARTESIA_VOICE_ID", "71a7ad14-091c-4e8e-a314-022ece01c121"
                ),
            ),
            openai_llm(agent, context, api_key=os.environ["OPENAI_API_KEY"]),
            agent,
            executor,
            context,
        )
        worker = PipelineWorker(pipeline)
        runner = WorkerRunner()
        await runner.add_workers(worker)
        await runner.run()


# --------------------------------------------------------------------------- text mode


class Printer(FrameProcessor):
    """Stands where the TTS would: prints what would be said and the functions that run, and
    tells when the agent has answered (a response that called no function ended)."""

    def __init__(self, out: Callable[[str], None]) -> None:
        super().__init__()
        self.out = out
        self.answered = asyncio.Event()
        self._words: list[str] = []
        self._called = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            self._show(frame)
        await self.push_frame(frame, direction)

    def _show(self, frame: Frame) -> None:
        if isinstance(frame, LLMFullResponseStartFrame):
            self._words, self._called = [], False
        elif isinstance(frame, LLMTextFrame):
            self._words.append(frame.text)
        elif isinstance(frame, FunctionCallsStartedFrame):
            self._called = True
        elif isinstance(frame, TTSSpeakFrame):
            self.out(f"agent   {frame.text}")
        elif isinstance(frame, FunctionCallInProgressFrame):
            self.out(f"  -> {frame.function_name} {json.dumps(dict(frame.arguments))}")
        elif isinstance(frame, FunctionCallResultFrame):
            self.out(f"  <- {json.dumps(frame.result, ensure_ascii=False)}")
        elif isinstance(frame, LLMFullResponseEndFrame):
            if self._words:
                self.out(f"agent   {''.join(self._words).strip()}")
                self._words = []
            if not self._called:
                self.answered.set()


async def text_call(
    agent: voicefn.Agent,
    lines: Sequence[str],
    *,
    llm: OpenAILLMService,
    executor: voicefn.Executor,
    context: voicefn.CallContext | None = None,
    out: Callable[[str], None] = print,
) -> None:
    """A call in text: each line is what the caller says. Ends when the lines run out or the
    agent ends the call (end_call ends the pipeline)."""
    context = context or voicefn.CallContext()
    printer = Printer(out)
    tools = register(llm, agent, executor, context, printer)
    welcome = agent.llm_view(context)["welcome_message"]
    llm_context = LLMContext(tools=tools)
    if welcome:  # said first: the first assistant message
        llm_context.add_message({"role": "assistant", "content": welcome})
    aggregators = LLMContextAggregatorPair(llm_context)
    pipeline = Pipeline([aggregators.user(), llm, printer, aggregators.assistant()])
    worker = PipelineWorker(pipeline, cancel_on_idle_timeout=False)
    started = asyncio.Event()
    worker.add_event_handler("on_pipeline_started", lambda *_: started.set())
    runner = WorkerRunner()
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    await started.wait()
    if welcome:
        out(f"agent   {welcome}")
    for line in lines:
        if running.done():
            break  # the agent ended the call
        out(f"caller  {line}")
        printer.answered.clear()
        said: ChatCompletionUserMessageParam = {"role": "user", "content": line}
        await worker.queue_frame(LLMMessagesAppendFrame([said], run_llm=True))
        answered = asyncio.ensure_future(printer.answered.wait())
        await asyncio.wait({answered, running}, return_when=asyncio.FIRST_COMPLETED)
        answered.cancel()
    if not running.done():
        await worker.queue_frame(EndFrame())
    await running


def scripted_replies(path: Path) -> list[Reply]:
    """An LLM script (examples/llm_script.yaml): one answer per LLM request."""
    replies = []
    for item in yaml.safe_load(path.read_text()):
        answer: dict[str, Any] = {"text": item} if isinstance(item, str) else item
        calls = [
            tool_call(c["name"], c.get("arguments") or {}) for c in answer.get("tool_calls", [])
        ]
        replies.append(Reply(text=answer.get("text"), tool_calls=calls))
    return replies


async def run_text(args: argparse.Namespace, lines: list[str], replies: list[Reply]) -> int:
    agent = voicefn.load_agent(args.agent)
    context = voicefn.CallContext(from_number=args.from_number)
    async with voicefn.Executor(allow_private_network=args.allow_private_network) as executor:
        if replies:
            with ScriptedLLM() as scripted:
                scripted.push(*replies)
                llm = openai_llm(agent, context, api_key="-", base_url=scripted.base_url)
                await text_call(agent, lines, llm=llm, executor=executor, context=context)
                await llm.client.close()
        else:
            llm = openai_llm(
                agent,
                context,
                api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
                base_url=args.base_url,
                model=args.model,
            )
            await text_call(agent, lines, llm=llm, executor=executor, context=context)
            await llm.client.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["voice"]:
        from pipecat.runner.run import main as pipecat_runner

        sys.argv = [sys.argv[0], *argv[1:]]
        pipecat_runner()  # finds bot() in this module
        return 0
    parser = argparse.ArgumentParser(prog="pipecat_bot.py")
    parser.add_argument("line", nargs="*", help="what the caller says, one turn each")
    parser.add_argument("--script", help="a file with one caller line per turn")
    parser.add_argument("--agent", default=str(AGENT_FILE))
    parser.add_argument("--llm-script", help="answer with voicefn's ScriptedLLM (no LLM needed)")
    parser.add_argument("--model", help="the model (default: the agent's, else gpt-4.1-mini)")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: OpenAI)")
    parser.add_argument("--from-number", help="the caller's number (send_sms texts it)")
    parser.add_argument("--allow-private-network", action="store_true")
    args = parser.parse_args(argv)
    lines = list(args.line)
    if args.script:
        lines += [x for x in Path(args.script).read_text().splitlines() if x.strip()]
    replies = scripted_replies(Path(args.llm_script)) if args.llm_script else []
    return asyncio.run(run_text(args, lines, replies))


if __name__ == "__main__":
    raise SystemExit(main())
