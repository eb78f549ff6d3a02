"""What a tool-call turn costs through voicefn's CallSession, next to the bare floor, by history size.

    python benchmarks/turn_overhead.py [--turns N] [--sizes 2,30,130] [--quick] [--json]

For each history size (the number of messages in the turn's first LLM request: the system prompt,
the earlier conversation, the new words), turns run one at a time, interleaved (the order rotates
every round), against the same servers, through:

* voicefn: a ``CallSession`` (a new one per turn, the earlier conversation already in its
  ``messages``) with one HTTP function (POST, JSON body) run by ``voicefn.Executor``;
* floor: aiohttp and orjson directly (``_calls.floor_turn``): what any Python program must do for
  the same turn;
* sdk (a reference, when the openai package is installed; ``--no-sdk`` leaves it out): the same
  loop through the openai SDK (one client for all turns), the function through the floor's aiohttp
  session: the LLM path voicefn had before its own client.

Per turn:

* CPU: this process's CPU time (``time.process_time``) from the turn's start to its end; the
  servers run in another process and turns run one at a time, so this is the turn's own cost,
  kernel time of its sockets included;
* (a) args -> request: from the moment the LLM server wrote the chunk that completes the tool
  call's arguments to the moment the function's request reached the function server;
* (b) result -> next LLM request: from the moment the function server wrote its response (or the
  LLM stream ended, if later) to the moment the follow-up LLM request reached the LLM server.

(a) and (b) come from the servers' clocks (``_call_servers.py``, ``time.monotonic_ns()``,
system-wide on Linux). The LLM streams the arguments in small fragments ``--gap-ms`` apart, then
holds the stream open (``--hold-ms``), so (a) measures "arguments complete -> request sent";
the function answers after ``--fn-delay-ms``, longer than the hold, so (b) starts at its answer.

Once: the memory an idle ``CallSession`` holds (tracemalloc over 200 sessions) and the CPU to make
one. Targets, printed as information (the exit status is 0 whether or not they are met): engine
CPU per turn <= 2 ms at 30 messages, shown two ways: what voicefn spends beyond the floor, and all
of the turn's CPU (with the default pacing every chunk wakes the loop, which costs the floor alone
2-3 ms; ``--gap-ms 0 --hold-ms 0 --fn-delay-ms 0`` delivers each answer at once); (a) and (b)
< 1 ms added over the floor at p50; an idle session < 100 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _calls import (
    SYSTEM,
    TOOLS,
    agent_spec,
    fetch_times,
    floor_client,
    floor_turn,
    history,
    idle_session_bytes,
    intervals,
    user_text,
    voicefn_turn,
)
from _common import Budget, HelperProcess, emit, environment, environment_line, percentile

CALL_SERVERS = Path(__file__).with_name("_call_servers.py")
CPU_TARGET_US = 2000.0  # engine CPU per turn <= 2 ms with a 30-message history
LATENCY_TARGET_US = 1000.0  # < 1 ms added at p50
IDLE_TARGET_BYTES = 100 * 1024

Turn = Callable[[str, list[dict[str, Any]]], Awaitable[str | None]]


def start_servers(args: argparse.Namespace) -> HelperProcess:
    argv = [
        sys.executable,
        str(CALL_SERVERS),
        f"--hold-ms={args.hold_ms}",
        f"--gap-ms={args.gap_ms}",
        f"--fn-delay-ms={args.fn_delay_ms}",
        f"--max-seconds={args.max_seconds * 2 + 60}",
    ]
    return HelperProcess(argv, "PORTS", "the benchmark servers")


async def run(args: argparse.Namespace, llm_port: int, fn_port: int) -> dict[str, Any]:
    import voicefn
    from voicefn.runtime import CallSession, load_agent

    agent = load_agent(agent_spec(llm_port, fn_port))
    llm_url = f"http://127.0.0.1:{llm_port}/v1"
    fn_url = f"http://127.0.0.1:{fn_port}/orders"
    sdk: Any = None
    if args.sdk:
        try:
            import openai
        except ImportError:
            args.sdk = False
        else:
            sdk = openai.AsyncOpenAI(base_url=llm_url, api_key="not-needed", max_retries=0)

    async with voicefn.Executor(allow_private_network=True) as ex, floor_client() as http:

        async def through_voicefn(key: str, earlier: list[dict[str, Any]]) -> str | None:
            session = CallSession(agent, executor=ex)
            session.messages.extend(earlier)
            try:
                return await voicefn_turn(session, key)
            finally:
                await session.aclose()

        async def through_floor(key: str, earlier: list[dict[str, Any]]) -> str | None:
            messages = [{"role": "system", "content": SYSTEM}, *earlier]
            return await floor_turn(http, f"{llm_url}/chat/completions", fn_url, messages, key)

        async def through_sdk(key: str, earlier: list[dict[str, Any]]) -> str | None:
            messages = [{"role": "system", "content": SYSTEM}, *earlier]
            return await sdk_turn(sdk, http, fn_url, messages, key)

        sides: dict[str, Turn] = {"voicefn": through_voicefn, "floor": through_floor}
        if sdk is not None:
            sides["sdk"] = through_sdk
        sizes = [int(s) for s in args.sizes.split(",")]
        per_size = args.max_seconds / len(sizes)
        results = []
        for number, size in enumerate(sizes):
            results.append(
                await measure_size(args, sides, size, f"s{number}", Budget(per_size), http, fn_port)
            )
        idle = idle_session_bytes(agent, ex)
    if sdk is not None:
        await sdk.close()
    return summarize(args, results, idle)


async def measure_size(
    args: argparse.Namespace,
    sides: dict[str, Turn],
    size: int,
    prefix: str,
    budget: Budget,
    http: Any,
    fn_port: int,
) -> dict[str, Any]:
    earlier = history(size)
    names = list(sides)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    keys: dict[str, list[str]] = {n: [] for n in names}
    failures: dict[str, list[str]] = {n: [] for n in names}
    gc.collect()
    rounds = 0
    for i in range(args.warmup + args.turns):
        measured = i >= args.warmup
        if measured and rounds >= 5 and budget.spent():
            break
        if i == args.warmup:
            gc.collect()
            gc.freeze()  # warm-up garbage and imports out of the collector's way
        order = names[i % len(names) :] + names[: i % len(names)]
        for side in order:
            key = f"{prefix}{side[0]}{i:05d}"
            started = time.process_time()
            try:
                async with asyncio.timeout(10):
                    problem = await sides[side](key, earlier)
            except Exception as exc:  # counted and reported
                problem = f"{type(exc).__name__}: {exc}"
            spent = time.process_time() - started
            if not measured:
                continue
            if problem is None:
                cpu[side].append(spent * 1e6)
                keys[side].append(key)
            else:
                failures[side].append(problem)
        rounds += measured
    gc.unfreeze()
    times = await fetch_times(http, fn_port, prefix)
    figures: dict[str, Any] = {}
    for side in names:
        a: list[float] = []
        b: list[float] = []
        for key in keys[side]:
            pair = intervals(times.get(key, {}))
            if pair is None:
                failures[side].append(f"turn {key}: missing server timestamps")
                continue
            a.append(pair[0])
            b.append(pair[1])
        figures[side] = {
            "cpu_us": _stats(cpu[side]),
            "a_us": _stats(a),
            "b_us": _stats(b),
            "failures": {"count": len(failures[side]), "first": failures[side][:3]},
        }
    return {"messages": size, "rounds": rounds, "sides": figures}


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p90": None, "n": 0}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p90": round(percentile(ordered, 90), 1),
        "n": len(ordered),
    }


async def sdk_turn(
    client: Any, http: Any, fn_url: str, messages: list[dict[str, Any]], key: str
) -> str | None:
    """The floor's turn with the openai SDK for the LLM requests (a reference)."""
    import orjson

    messages.append({"role": "user", "content": user_text(key)})
    stream = await client.chat.completions.create(
        model="bench", messages=messages, tools=TOOLS, stream=True
    )
    call_id = name = arguments = ""
    task: asyncio.Task[str] | None = None

    async def call_function(order_id: str) -> str:
        body = orjson.dumps({"order_id": order_id})
        async with http.post(fn_url, data=body, headers={"Content-Type": "application/json"}) as r:
            return str((await r.read()).decode())

    async for chunk in stream:
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or ():
            call_id = tc.id or call_id
            if tc.function is not None:
                name += tc.function.name or ""
                arguments += tc.function.arguments or ""
            if task is None and arguments.endswith("}"):
                try:
                    parsed = orjson.loads(arguments)
                except orjson.JSONDecodeError:
                    continue
                task = asyncio.create_task(call_function(parsed["order_id"]))
    if task is None:
        return "no tool call"
    content = await task
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
    stream = await client.chat.completions.create(
        model="bench", messages=messages, tools=TOOLS, stream=True
    )
    said = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    return None if said else "no answer"


def summarize(
    args: argparse.Namespace, results: list[dict[str, Any]], idle: dict[str, float]
) -> dict[str, Any]:
    import aiohttp
    import orjson

    import voicefn

    versions: dict[str, Any] = {
        "voicefn": getattr(voicefn, "__version__", "?"),
        "aiohttp": aiohttp.__version__,
        "orjson": orjson.__version__,
    }
    if args.sdk:
        import openai

        versions["openai"] = openai.__version__
    for result in results:
        sides = result["sides"]
        v, floor = sides["voicefn"], sides["floor"]
        derived: dict[str, Any] = {}
        for metric in ("cpu_us", "a_us", "b_us"):
            if v[metric]["p50"] is None or floor[metric]["p50"] is None:
                continue
            derived[metric] = {
                "added_p50": round(v[metric]["p50"] - floor[metric]["p50"], 1),
                "ratio_p50": round(v[metric]["p50"] / floor[metric]["p50"], 2),
            }
            if "sdk" in sides and sides["sdk"][metric]["p50"] is not None:
                derived[metric]["sdk_ratio_p50"] = round(
                    sides["sdk"][metric]["p50"] / floor[metric]["p50"], 2
                )
        result["versus_floor"] = derived
    at_30 = next((r for r in results if r["messages"] == 30), None)
    engine_30 = at_30["versus_floor"].get("cpu_us", {}).get("added_p50") if at_30 else None
    total_30 = at_30["sides"]["voicefn"]["cpu_us"]["p50"] if at_30 else None
    targets = {
        "engine_cpu_per_turn_at_30_messages_us": {
            "value": engine_30,
            "target": "<= 2000",
            "met": engine_30 is not None and engine_30 <= CPU_TARGET_US,
        },
        "total_cpu_per_turn_at_30_messages_us": {
            "value": total_30,
            "target": "<= 2000",
            "met": total_30 is not None and total_30 <= CPU_TARGET_US,
        },
        "idle_session_bytes": {
            "value": round(idle["bytes"]),
            "target": f"< {IDLE_TARGET_BYTES}",
            "met": idle["bytes"] < IDLE_TARGET_BYTES,
        },
    }
    for metric in ("a_us", "b_us"):
        added = [r["versus_floor"].get(metric, {}).get("added_p50") for r in results]
        worst = max((x for x in added if x is not None), default=None)
        targets[f"{metric[0]}_added_p50_us_worst_size"] = {
            "value": worst,
            "target": "< 1000",
            "met": worst is not None and worst < LATENCY_TARGET_US,
        }
    return {
        "config": {
            "turns_per_side_and_size": args.turns,
            "warmup": args.warmup,
            "hold_after_args_ms": args.hold_ms,
            "argument_chunk_gap_ms": args.gap_ms,
            "function_delay_ms": args.fn_delay_ms,
        },
        "environment": environment(**versions),
        "sizes": results,
        "idle_session": {
            "bytes": round(idle["bytes"]),
            "create_cpu_us": round(idle["create_cpu_us"], 1),
        },
        "targets": targets,
    }


def _cell(stats: dict[str, Any]) -> str:
    if stats["p50"] is None:
        return f"{'-':>15}"
    return f"{stats['p50']:7.0f} ({stats['p90']:5.0f})"


def print_report(data: dict[str, Any]) -> None:
    cfg, env = data["config"], data["environment"]
    packages = [p for p in ("voicefn", "aiohttp", "orjson", "openai") if p in env]
    print(environment_line(env, *packages))
    print(
        f"up to {cfg['turns_per_side_and_size']} turns per side and size "
        f"(+{cfg['warmup']} warm-up), interleaved; arguments in fragments "
        f"{cfg['argument_chunk_gap_ms']} ms apart, held {cfg['hold_after_args_ms']} ms, "
        f"function answers after {cfg['function_delay_ms']} ms"
    )
    sides = list(data["sizes"][0]["sides"])
    for metric, title in (
        ("cpu_us", "CPU per turn (process CPU time)"),
        ("a_us", "(a) arguments complete -> function request arrived"),
        ("b_us", "(b) function response -> next LLM request arrived"),
    ):
        print(f"\n{title}, microseconds: p50 (p90)")
        head = f"{'messages':>8} " + " ".join(f"{s:>15}" for s in sides)
        head += f" {'voicefn/floor':>13} {'added':>7}"
        if "sdk" in sides:
            head += f" {'sdk/floor':>9}"
        print(head)
        for result in data["sizes"]:
            row = f"{result['messages']:>8} " + " ".join(
                _cell(result["sides"][s][metric]) for s in sides
            )
            versus = result["versus_floor"].get(metric)
            if versus:
                row += f" {versus['ratio_p50']:12.2f}x {versus['added_p50']:+7.0f}"
                if "sdk_ratio_p50" in versus:
                    row += f" {versus['sdk_ratio_p50']:8.2f}x"
            print(row)
    idle = data["idle_session"]
    print(
        f"\nidle CallSession: {idle['bytes'] / 1024:.1f} KB (tracemalloc, 200 sessions), "
        f"{idle['create_cpu_us']:.0f} us of CPU to make one"
    )
    labels = {
        "engine_cpu_per_turn_at_30_messages_us": (
            "engine CPU per turn at 30 messages (voicefn - floor, us) <= 2 ms"
        ),
        "total_cpu_per_turn_at_30_messages_us": (
            "all CPU per turn at 30 messages, I/O wake-ups included (us) <= 2 ms"
        ),
        "idle_session_bytes": "idle CallSession < 100 KB",
        "a_added_p50_us_worst_size": "(a) < 1 ms added at p50 (worst size)",
        "b_added_p50_us_worst_size": "(b) < 1 ms added at p50 (worst size)",
    }
    for key, target in data["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        print(f"target: {labels[key]}: {target['value']} -> {verdict}")
    for result in data["sizes"]:
        for side, figures in result["sides"].items():
            f = figures["failures"]
            if f["count"]:
                print(
                    f"{side} at {result['messages']} messages: {f['count']} failed turns, e.g. {f['first'][0]}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--turns", type=int, default=80, help="measured turns per side and size")
    parser.add_argument("--warmup", type=int, default=8, help="unmeasured turns per side and size")
    parser.add_argument("--sizes", default="2,30,130", help="history sizes (messages)")
    parser.add_argument("--quick", action="store_true", help="25 turns per side and size")
    parser.add_argument("--no-sdk", dest="sdk", action="store_false", help="leave the SDK out")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--hold-ms", type=float, default=25.0, help="hold after the last args")
    parser.add_argument("--gap-ms", type=float, default=2.0, help="gap between args chunks")
    parser.add_argument("--fn-delay-ms", type=float, default=40.0, help="function server delay")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop measuring after")
    args = parser.parse_args()
    if args.quick:
        args.turns, args.warmup = 25, 5
    args.turns = max(args.turns, 1)
    with start_servers(args) as servers:
        llm_port, fn_port = servers.numbers
        data = asyncio.run(run(args, llm_port, fn_port))
    emit(data, args.json, print_report)


if __name__ == "__main__":
    main()
