"""What ``turn_overhead.py`` and ``call_scale.py`` share: the agent, the history, one turn through
a ``CallSession`` and the same turn through the bare floor, and the idle session's memory.

The bare floor is what any Python program must do for the same turn, and nothing more: one pooled
``aiohttp.ClientSession``, the request body serialised by orjson, the SSE ``data:`` lines parsed by
orjson, the function's request sent the moment the accumulated arguments parse, the assistant and
tool messages appended, the follow-up request streamed to its end.

Turn keys are letters and digits; the fake servers (``_call_servers.py``) read them back from
``ORD-<key>`` in the last message and in the function's body, to timestamp the turn.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

from _common import check_order_function, check_order_parameters

if TYPE_CHECKING:
    import aiohttp

    from voicefn import Executor
    from voicefn.runtime import Agent

SYSTEM = "You are Sam from Acme. Keep answers short. Use check_order for order questions."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "check_order",
            "description": "Look up an order's status.",
            "parameters": check_order_parameters(),
        },
    }
]
_JSON = {"Content-Type": "application/json"}


def user_text(key: str) -> str:
    return f"Where is my order ORD-{key}?"


def agent_spec(llm_port: int, fn_port: int) -> dict[str, Any]:
    return {
        "name": "bench",
        "system_prompt": SYSTEM,
        "llm": {
            "model": "bench",
            "base_url": f"http://127.0.0.1:{llm_port}/v1",
            "max_retries": 0,
        },
        "functions": [
            check_order_function(f"http://127.0.0.1:{fn_port}/orders", timeout_ms=10_000)
        ],
    }


def history(size: int) -> list[dict[str, Any]]:
    """``size - 2`` earlier messages (a conversation of tool-call turns), so that the turn's first
    request carries ``size`` messages with the system prompt and the new words."""
    out: list[dict[str, Any]] = []
    turn = 0
    while len(out) < size - 2:
        call = f"call_h{turn:04d}"
        order = f"H{turn:04d}"
        out += [
            {"role": "user", "content": f"And order {order}? I ordered it last week, it is late."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call,
                        "type": "function",
                        "function": {
                            "name": "check_order",
                            "arguments": f'{{"order_id":"{order}"}}',
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": call,
                "content": f'{{"order_id":"{order}","status":"shipped","eta_days":2,"carrier":"UPS"}}',
            },
            {"role": "assistant", "content": "It has shipped with UPS and arrives in two days."},
        ]
        turn += 1
    return out[: max(size - 2, 0)]


# ------------------------------------------------------------------------------ voicefn


async def voicefn_turn(session: Any, key: str) -> str | None:
    """One turn through the session; None if it went as scripted, else what went wrong."""
    from voicefn.runtime import AgentMessage, ErrorEvent, FunctionFinished, TurnFinished

    problem: str | None = "no TurnFinished"
    calls = 0
    said = ""
    async for ev in session.turn(user_text(key)):
        if isinstance(ev, FunctionFinished):
            if not ev.result.ok:
                return f"function failed: {ev.result.content[:120]}"
            calls += 1
        elif isinstance(ev, AgentMessage):
            said = ev.text
        elif isinstance(ev, ErrorEvent):
            return f"error: {ev.message}: {ev.detail}"
        elif isinstance(ev, TurnFinished):
            problem = None if calls == 1 and said else f"{calls} calls, said {said!r}"
    return problem


def idle_session_bytes(agent: Agent, executor: Executor, count: int = 200) -> dict[str, float]:
    """What an idle ``CallSession`` holds (tracemalloc, bytes each, over ``count`` sessions made
    after a first one) and the CPU to make one (microseconds, without tracemalloc)."""
    from voicefn.runtime import CallSession

    def make() -> Any:
        session = CallSession(agent, executor=executor)
        assert session.llm is not None  # its shared client resolved, as on a first turn
        return session

    make()  # the shared client and caches exist first
    started = time.process_time()
    for _ in range(count):
        make()
    cpu_us = (time.process_time() - started) / count * 1e6
    gc.collect()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    before = tracemalloc.take_snapshot()
    sessions = [make() for _ in range(count)]
    gc.collect()
    after = tracemalloc.take_snapshot()
    if not tracing:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del sessions
    return {"bytes": grown / count, "create_cpu_us": cpu_us}


# ------------------------------------------------------------------------------ the floor


async def floor_turn(
    http: aiohttp.ClientSession,
    llm_url: str,
    fn_url: str,
    messages: list[dict[str, Any]],
    key: str,
) -> str | None:
    """The same turn with aiohttp and orjson directly; ``messages`` grows as a session's would."""
    import orjson

    async def call_function(arguments: dict[str, Any]) -> str:
        body = orjson.dumps({"order_id": arguments["order_id"]})
        async with http.post(fn_url, data=body, headers=_JSON) as response:
            return (await response.read()).decode()

    messages.append({"role": "user", "content": user_text(key)})
    request = {"model": "bench", "messages": messages, "tools": TOOLS, "stream": True}
    call_id = name = arguments = ""
    task: asyncio.Task[str] | None = None
    async for delta in _deltas(http, llm_url, orjson.dumps(request)):
        for tc in delta.get("tool_calls") or ():
            call_id = tc.get("id") or call_id
            function = tc.get("function") or {}
            name += function.get("name") or ""
            arguments += function.get("arguments") or ""
            if task is None and arguments.endswith("}"):
                try:
                    parsed = orjson.loads(arguments)
                except orjson.JSONDecodeError:
                    continue
                task = asyncio.create_task(call_function(parsed))
    if task is None:
        return "no tool call"
    content = await task
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
    request = {"model": "bench", "messages": messages, "tools": TOOLS, "stream": True}
    text = [d.get("content") or "" async for d in _deltas(http, llm_url, orjson.dumps(request))]
    said = "".join(text)
    messages.append({"role": "assistant", "content": said})
    return None if said else "no answer"


async def _deltas(http: aiohttp.ClientSession, url: str, body: bytes) -> Any:
    import orjson

    async with http.post(url, data=body, headers=_JSON) as response:
        buffer = b""
        async for piece in response.content.iter_any():
            buffer += piece
            while (end := buffer.find(b"\n\n")) >= 0:
                line, buffer = buffer[:end], buffer[end + 2 :]
                if not line.startswith(b"data: "):
                    continue
                if line[6:] == b"[DONE]":
                    return
                choices = orjson.loads(line[6:])["choices"]
                if choices:
                    yield choices[0]["delta"]


def floor_client(limit: int = 1000) -> aiohttp.ClientSession:
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=30),
    )


async def fetch_times(http: aiohttp.ClientSession, port: int, prefix: str) -> dict[str, Any]:
    """The servers' timestamps of the turns whose key starts with ``prefix`` (then forgotten)."""
    import orjson

    async with http.get(f"http://127.0.0.1:{port}/_times?prefix={prefix}") as response:
        result: dict[str, Any] = orjson.loads(await response.read())
        return result


def intervals(times: dict[str, int]) -> tuple[float, float] | None:
    """(args complete -> function request, function response -> next LLM request) in
    microseconds, from one turn's server timestamps; None if the turn did not get that far.
    The second starts at the function's response or at the LLM stream's end, the later one."""
    need = ("args_written", "fn_arrived", "fn_responded", "stream_end_written", "llm2_arrived")
    if not all(k in times for k in need):
        return None
    a = (times["fn_arrived"] - times["args_written"]) / 1e3
    start = max(times["fn_responded"], times["stream_end_written"])
    return a, (times["llm2_arrived"] - start) / 1e3
