"""A LiveKit Agents voice agent whose tools are voicefn functions (examples/store_agent.yaml).

Voice, in a LiveKit room (a phone call through LiveKit SIP, or the Agents Playground). STT, LLM
and TTS go through LiveKit Inference, so only LiveKit credentials are needed:

    pip install "voicefn[livekit]"
    python examples/order_api.py &                 # the store API the functions call
    export LIVEKIT_URL=wss://... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    python examples/livekit_agent.py dev           # LiveKit's CLI: dev, start, console, ...

Text, with no room and no audio: the same agent in LiveKit's AgentSession, one caller line per
turn. With the scripted LLM (no key, no network):

    python examples/livekit_agent.py text --script examples/caller_script.txt \\
        --llm-script examples/llm_script.yaml --allow-private-network

or with a real LLM through LiveKit Inference (``--model``, LIVEKIT_API_KEY/SECRET set), or any
OpenAI-compatible server that needs no key (``--base-url http://localhost:11434/v1``).

The part that matters is five lines (``entrypoint`` below)::

    tools = VoicefnToolset(voicefn.load_agent("store_agent.yaml"), executor=executor)
    session = AgentSession(stt=..., llm=..., tts=...)
    await session.start(Agent(instructions=tools.instructions, tools=[tools]), room=ctx.room)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    CloseEvent,
    FunctionToolsExecutedEvent,
    JobContext,
    cli,
    inference,
)
from livekit.agents.voice.io import TextOutput

import voicefn
from voicefn.integrations.livekit import VoicefnToolset
from voicefn.testing import Reply, ScriptedLLM, tool_call

HERE = Path(__file__).resolve().parent
AGENT_FILE = HERE / "store_agent.yaml"

server = AgentServer()
_executor: voicefn.Executor | None = None


def shared_executor() -> voicefn.Executor:
    """One Executor per process: it owns the connection pool. (Loopback is allowed for the
    example API; leave it off in production.)"""
    global _executor
    if _executor is None:
        _executor = voicefn.Executor(allow_private_network=True)
    return _executor


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.wait_for_participant()  # the caller: their number and call id become the context
    tools = VoicefnToolset(
        voicefn.load_agent(AGENT_FILE),
        executor=shared_executor(),
        # When the session closes, the agent's post-call work runs once (extraction, post-call
        # functions, the agent webhook signed with this Standard Webhooks secret, if set).
        signing_secret=os.environ.get("VOICEFN_WEBHOOK_SECRET"),
    )
    session: AgentSession[Any] = AgentSession(
        stt="deepgram/nova-3", llm="openai/gpt-4.1-mini", tts="cartesia/sonic-3.5"
    )
    await session.start(Agent(instructions=tools.instructions, tools=[tools]), room=ctx.room)
    if tools.welcome_message:
        session.say(tools.welcome_message)


# --------------------------------------------------------------------------- text mode


class Printer(TextOutput):
    """Where the agent's speech would go: printed, one line per thing said."""

    def __init__(self, out: Callable[[str], None]) -> None:
        super().__init__(label="printer", next_in_chain=None)
        self.out = out
        self._words: list[str] = []

    async def capture_text(self, text: str) -> None:
        self._words.append(text)

    def flush(self) -> None:
        line, self._words = "".join(self._words), []
        if line:
            self.out(f"agent   {line}")


async def text_call(
    agent: voicefn.Agent,
    lines: Sequence[str],
    *,
    llm: Any,
    executor: voicefn.Executor,
    context: voicefn.CallContext | None = None,
    out: Callable[[str], None] = print,
) -> VoicefnToolset:
    """A call in text: each line is what the caller says; what the agent says and the functions
    it runs are printed. Ends when the lines run out or the agent ends the call."""
    tools = VoicefnToolset(agent, executor=executor, context=context)
    session: AgentSession[Any] = AgentSession(llm=llm)
    session.output.transcription = Printer(out)
    closed: asyncio.Future[CloseEvent] = asyncio.get_running_loop().create_future()

    def on_close(ev: CloseEvent) -> None:
        if not closed.done():
            closed.set_result(ev)

    def on_tools(ev: FunctionToolsExecutedEvent) -> None:
        for call, output in ev.zipped():
            out(f"  -> {call.name} {call.arguments}")
            out(f"  <- {'error: ' if output.is_error else ''}{output.output}")

    session.on("close", on_close)
    session.on("function_tools_executed", on_tools)
    await session.start(Agent(instructions=tools.instructions, tools=[tools]))
    if tools.welcome_message:
        await session.say(tools.welcome_message)
    for line in lines:
        if tools.ended:
            break
        out(f"caller  {line}")
        await session.run(user_input=line)
    if tools.ended:
        await closed  # the goodbye is said, then the session ends
    else:
        await session.aclose()
    return tools


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


async def run_text(args: argparse.Namespace, lines: list[str]) -> int:
    agent = voicefn.load_agent(args.agent)
    async with voicefn.Executor(allow_private_network=args.allow_private_network) as executor:
        if args.llm_script:
            with ScriptedLLM() as scripted:
                scripted.push(*scripted_replies(Path(args.llm_script)))
                # LiveKit's own OpenAI-wire client; the local server checks no key.
                llm = inference.LLM(
                    "scripted", base_url=scripted.base_url, api_key="-", api_secret="-" * 32
                )
                await text_call(agent, lines, llm=llm, executor=executor)
                await llm.aclose()
        else:
            llm = inference.LLM(args.model, base_url=args.base_url)
            await text_call(agent, lines, llm=llm, executor=executor)
            await llm.aclose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["text"]:
        sys.argv = [sys.argv[0], *argv]
        cli.run_app(server)  # LiveKit's CLI: dev, start, console, connect, download-files
        return 0
    parser = argparse.ArgumentParser(prog="livekit_agent.py text")
    parser.add_argument("line", nargs="*", help="what the caller says, one turn each")
    parser.add_argument("--script", help="a file with one caller line per turn")
    parser.add_argument("--agent", default=str(AGENT_FILE))
    parser.add_argument("--llm-script", help="answer with voicefn's ScriptedLLM (no LLM needed)")
    parser.add_argument("--model", default="openai/gpt-4.1-mini")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint instead of LiveKit's")
    parser.add_argument("--allow-private-network", action="store_true")
    args = parser.parse_args(argv[1:])
    lines = list(args.line)
    if args.script:
        lines += [x for x in Path(args.script).read_text().splitlines() if x.strip()]
    return asyncio.run(run_text(args, lines))


if __name__ == "__main__":
    raise SystemExit(main())
