"""What the LiveKit and Pipecat adapters add to a tool call, beside the Executor run directly.

    .venv/bin/python benchmarks/adapter_overhead.py               # about 20 s
    .venv/bin/python benchmarks/adapter_overhead.py --calls 500   # quick look
    .venv/bin/python benchmarks/adapter_overhead.py --json

The same HTTP function (``check_order``, a POST with a JSON body, to ``_loopback_server.py`` in
its own process) is called one call at a time, interleaved call by call (the order rotates every
call), through:

- **executor**: ``Executor.run(function, arguments, context, tool_call_id=...)``;
- **livekit tool**: the LiveKit tool ``VoicefnToolset`` made for it, called as LiveKit calls a raw
  tool (``tool(raw_arguments=..., context=RunContext(...))``): what the adapter itself adds;
- **livekit execute**: LiveKit's own ``llm.utils.execute_function_call`` on that tool (its JSON
  argument parsing and binding, the ``FunctionCallOutput``): the adapter plus LiveKit's dispatch;
- **pipecat handler**: the handler ``register()`` gave the Pipecat LLM service, called as Pipecat
  calls it (``handler(FunctionCallParams(...))``, the result through ``result_callback``).

Every call has its own arguments (a side-effecting function is sent once per arguments: a repeat
would be answered from memory, not measured). Figures are the median and p90 of each path's call
times, the ratio to the executor's median, and what the path adds at the median. Target: under
0.5 ms added at p50 (printed as information; exit 1 only if a call failed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import voicefn
from _common import (
    Budget,
    LoopbackServer,
    check_order_function,
    emit,
    environment,
    environment_line,
    percentile,
)

with warnings.catch_warnings():  # pipecat.audio imports audioop (deprecated on 3.11-3.12)
    warnings.simplefilter("ignore", DeprecationWarning)
    from livekit.agents import AgentSession, RunContext
    from livekit.agents.llm import FunctionCall, FunctionToolCall, ToolContext
    from livekit.agents.llm.utils import execute_function_call
    from livekit.agents.voice import SpeechHandle
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.services.llm_service import FunctionCallParams
    from pipecat.services.openai.llm import OpenAILLMService

    from voicefn.integrations.livekit import VoicefnToolset
    from voicefn.integrations.pipecat import register

NAMES = ("executor", "livekit tool", "livekit execute", "pipecat handler")
TARGET_ADDED_US = 500.0
Call = Callable[[int], Awaitable[bool]]


def arguments(i: int) -> dict[str, Any]:
    return {"order_id": f"ORD-{i}"}


async def make_calls(ex: voicefn.Executor, function: voicefn.Function) -> dict[str, Call]:
    context = voicefn.CallContext(call_sid="CA-bench", from_number="+15550100")

    async def executor(i: int) -> bool:
        result = await ex.run(function, arguments(i), context, tool_call_id=f"e{i}")
        return result.ok

    toolset = VoicefnToolset([function], executor=ex, context=context)
    (tool,) = toolset.function_tools()
    tool_ctx = ToolContext([toolset])
    session: AgentSession[Any] = AgentSession()  # never started: no filler, no speech

    def run_context(call_id: str, args: str) -> RunContext[Any]:
        call = FunctionCall(call_id=call_id, name=function.name, arguments=args)
        return RunContext(session=session, speech_handle=SpeechHandle.create(), function_call=call)

    async def livekit_tool(i: int) -> bool:
        output = await tool(raw_arguments=arguments(i), context=run_context(f"l{i}", "{}"))
        return isinstance(output, str) and '"shipped"' in output

    async def livekit_execute(i: int) -> bool:
        raw = f'{{"order_id": "ORD-{i}"}}'
        call = FunctionToolCall(name=function.name, arguments=raw, call_id=f"x{i}")
        result = await execute_function_call(call, tool_ctx, call_ctx=run_context(f"x{i}", raw))
        return not result.fnc_call_out.is_error

    llm = OpenAILLMService(api_key="-", settings=OpenAILLMService.Settings(model="-"))
    register(llm, [function], ex, context)
    handler = llm._functions[function.name].handler  # what Pipecat calls for this function
    results: list[Any] = []

    async def result_callback(result: Any, *, properties: Any = None) -> None:
        results.append(result)

    llm_context = LLMContext()

    async def pipecat_handler(i: int) -> bool:
        params = FunctionCallParams(
            function_name=function.name,
            tool_call_id=f"p{i}",
            arguments=arguments(i),
            llm=llm,
            pipeline_worker=None,  # type: ignore[arg-type]  # not used by the handler
            context=llm_context,
            result_callback=result_callback,
        )
        await handler(params)  # type: ignore[operator]
        return isinstance(results.pop(), dict)

    return {
        "executor": executor,
        "livekit tool": livekit_tool,
        "livekit execute": livekit_execute,
        "pipecat handler": pipecat_handler,
    }


async def measure(args: argparse.Namespace, port: int, budget: Budget) -> dict[str, Any]:
    function = voicefn.Function.model_validate(check_order_function(f"http://127.0.0.1:{port}/"))
    samples: dict[str, list[int]] = {name: [] for name in NAMES}
    failures = dict.fromkeys(NAMES, 0)
    counter = itertools.count()
    async with voicefn.Executor(allow_private_network=True) as ex:
        calls = await make_calls(ex, function)
        for name, call in calls.items():  # correctness first
            if not await call(next(counter)):
                raise RuntimeError(f"the {name} call failed")
        for _ in range(args.warmup):
            for call in calls.values():
                await call(next(counter))
        gc.collect()
        clock = time.perf_counter_ns
        order = list(NAMES)
        done = 0
        for n in range(args.calls):
            if n % 100 == 0 and budget.spent():
                break
            shift = n % len(order)  # interleaved, call by call, in a rotating order
            for name in order[shift:] + order[:shift]:
                i = next(counter)
                t0 = clock()
                ok = await calls[name](i)
                samples[name].append(clock() - t0)
                failures[name] += not ok
            done += 1
    return report(samples, failures, done)


def report(samples: dict[str, list[int]], failures: dict[str, int], done: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, values in samples.items():
        values.sort()
        figures[name] = {
            "p50_us": percentile(values, 50) / 1000,
            "p90_us": percentile(values, 90) / 1000,
        }
    base = figures["executor"]["p50_us"]
    for name in NAMES[1:]:
        figures[name]["ratio"] = figures[name]["p50_us"] / base
        figures[name]["added_p50_us"] = figures[name]["p50_us"] - base
    import livekit.agents
    import pipecat

    return {
        "calls": done,
        "figures": figures,
        "failures": failures,
        "target_added_p50_us": TARGET_ADDED_US,
        "environment": environment(
            voicefn=voicefn.__version__,
            **{"livekit-agents": livekit.agents.__version__, "pipecat-ai": pipecat.__version__},
        ),
    }


def print_table(data: dict[str, Any]) -> None:
    env = data["environment"]
    print(f"adapter overhead: {data['calls']} calls per path, one at a time, interleaved")
    print(environment_line(env, "voicefn", "livekit-agents", "pipecat-ai"))
    print()
    print(f"{'path':<17}{'p50 us':>9}{'p90 us':>9}{'ratio':>8}{'added us':>10}")
    for name, f in data["figures"].items():
        ratio = f"{f['ratio']:.3f}" if "ratio" in f else "1"
        added = f"{f['added_p50_us']:+.0f}" if "added_p50_us" in f else ""
        print(f"{name:<17}{f['p50_us']:>9.0f}{f['p90_us']:>9.0f}{ratio:>8}{added:>10}")
    print()
    for name in ("livekit tool", "pipecat handler", "livekit execute"):
        added = data["figures"][name]["added_p50_us"]
        verdict = "met" if added < data["target_added_p50_us"] else "NOT met"
        print(f"target < {data['target_added_p50_us']:.0f} us added at p50, {name}: {verdict}")
    if any(data["failures"].values()):
        print(f"failures: {data['failures']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="calls per path (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up calls per path")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="stop measuring after this (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.warmup < 0 or args.max_seconds <= 0:
        parser.error("--calls must be >= 1, --warmup >= 0, --max-seconds > 0")
    return args


async def amain(args: argparse.Namespace, port: int) -> dict[str, Any]:
    async with asyncio.timeout(args.max_seconds * 2):
        return await measure(args, port, Budget(args.max_seconds))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with LoopbackServer(max_seconds=args.max_seconds * 2 + 30) as server:
        try:
            data = asyncio.run(amain(args, server.port))
        except TimeoutError:
            print(f"benchmark stopped: over {args.max_seconds * 2:.0f} s", file=sys.stderr)
            return 1
    emit(data, args.json, print_table)
    return 1 if any(data["failures"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
