"""The MCP row of the adapter benchmark: what serving (and consuming) functions over MCP adds.

    python benchmarks/mcp_overhead.py [--calls N] [--rounds R] [--max-seconds S] [--json]

The function is the benchmarks' ``check_order`` (a POST with a JSON body) against
``_loopback_server.py`` in its own process. One call at a time, interleaved in alternating
batches after a warm-up, in this process:

* **direct**: ``Executor.run(function, {"order_id": "ORD-1"}, context)``, the floor;
* **serve, JSON-RPC**: the SDK's ``ClientSession.call_tool`` to ``build_server(agent, executor)``
  over the SDK's in-memory streams (the 2025-11-25 handshake era: every message serialised and
  parsed as JSON-RPC, as over stdio), which runs the same ``Executor.run``;
* **serve, direct dispatch**: the SDK's ``Client(server)`` in-process (the 2026-07-28 era: no
  framing);
* **SDK floor**: the same ``ClientSession.call_tool`` over the same streams to a bare low-level
  ``Server`` whose handler only awaits ``Executor.run`` and returns its text: the least any MCP
  server can do to run the function. What voicefn's adapter adds is serve (JSON-RPC) minus this
  floor; the rest of "added" is the SDK's.

Consuming (informative; the server is another process, so its transport is in the figures):
``voicefn mcp serve --http`` serves the same function on loopback, and this process calls it
through

* **consume, voicefn**: ``Executor.run`` of the function an ``{mcp: ...}`` entry makes (egress-
  checked transport, one pooled session, the result mapping);
* **consume, SDK**: a bare SDK ``Client.call_tool`` over the same streamable-HTTP transport (the
  floor for MCP over HTTP).

Target (issue 12): under 0.5 ms added at p50 by the serving adapter over direct. Figures are the
median over rounds of each round's p50/p90; printed as information, exit status 1 only if calls
fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp
from mcp import Client, ClientSession
from mcp.shared.memory import create_client_server_memory_streams

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
from voicefn.integrations.mcp import build_server
from voicefn.runtime.agent import Agent, load_agent

ARGS = {"order_id": "ORD-1"}
VOICEFN = str(Path(sys.executable).with_name("voicefn"))
Call = Callable[[], Awaitable[bool]]
TARGET_MS = 0.5


@contextlib.asynccontextmanager
async def memory_session(server: Any) -> AsyncIterator[ClientSession]:
    async with (
        create_client_server_memory_streams() as (client_streams, server_streams),
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(server.run, *server_streams, server.create_initialization_options())
        async with ClientSession(*client_streams) as session:
            await session.initialize()
            yield session
        tg.cancel_scope.cancel()


def bare_server(ex: voicefn.Executor, fn: voicefn.Function) -> Any:
    """A low-level MCP server whose handler only runs ``fn`` and returns the text: the floor."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    tool = types.Tool(name="check_order", input_schema={"type": "object"})

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: Any) -> Any:
        result = await ex.run(fn, params.arguments)
        return types.CallToolResult(content=[types.TextContent(text=result.content)])

    return Server("floor", on_list_tools=list_tools, on_call_tool=call_tool)


@contextlib.contextmanager
def served_over_http(function_doc: dict[str, Any], seconds: float) -> Any:
    """``voicefn mcp serve --http`` of an agent with ``function_doc``, on a free port."""
    with tempfile.TemporaryDirectory() as folder:
        agent = Path(folder) / "agent.json"
        agent.write_text(json.dumps({"name": "bench", "functions": [function_doc]}))
        argv = [VOICEFN, "mcp", "serve", str(agent), "--http", "--port", "0"]
        argv += ["--allow-private-network", "--json"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("voicefn mcp serve did not start")
            yield json.loads(line)["url"]
        finally:
            proc.terminate()
            try:
                proc.wait(seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close() if proc.stdout else None


async def measure(
    calls: dict[str, Call], per_round: int, rounds: int, budget: Budget
) -> tuple[dict[str, dict[str, float]], int, int]:
    """Interleaved batches; per path the median over rounds of p50 and p90 (ms)."""
    batch = 20
    p50s: dict[str, list[float]] = {name: [] for name in calls}
    p90s: dict[str, list[float]] = {name: [] for name in calls}
    failures = 0
    done = 0
    for _ in range(rounds):
        if budget.spent():
            break
        samples: dict[str, list[float]] = {name: [] for name in calls}
        order = list(calls)
        for start in range(0, per_round, batch):
            for name in order:
                call = calls[name]
                for _ in range(min(batch, per_round - start)):
                    t0 = time.perf_counter()
                    ok = await call()
                    samples[name].append((time.perf_counter() - t0) * 1000)
                    failures += not ok
            order.reverse()
        for name, values in samples.items():
            values.sort()
            p50s[name].append(percentile(values, 50))
            p90s[name].append(percentile(values, 90))
        done += 1
    figures = {
        name: {"p50_ms": statistics.median(p50s[name]), "p90_ms": statistics.median(p90s[name])}
        for name in calls
        if p50s[name]
    }
    return figures, done, failures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    budget = Budget(args.max_seconds)
    with LoopbackServer(args.max_seconds * 2 + 60) as api:
        doc = check_order_function(f"http://127.0.0.1:{api.port}/orders", timeout_ms=60_000)
        fn = voicefn.load_function(doc)
        agent = Agent(name="bench", functions=[fn])
        ctx = voicefn.CallContext(call_sid="CA-bench", agent_id="bench")
        async with voicefn.Executor(allow_private_network=True) as ex:
            server = build_server(agent, ex, lambda: ctx)

            async def direct() -> bool:
                return (await ex.run(fn, ARGS, ctx)).ok

            async with (
                memory_session(server) as session,
                memory_session(bare_server(ex, fn)) as floor_session,
                Client(server) as in_process,
            ):

                async def jsonrpc() -> bool:
                    return not (await session.call_tool("check_order", ARGS)).is_error

                async def dispatch() -> bool:
                    return not (await in_process.call_tool("check_order", ARGS)).is_error

                async def floor() -> bool:
                    return not (await floor_session.call_tool("check_order", ARGS)).is_error

                serve_calls = {
                    "direct": direct,
                    "serve_jsonrpc": jsonrpc,
                    "serve_dispatch": dispatch,
                    "sdk_floor": floor,
                }
                for call in serve_calls.values():  # warm-up: pools, caches, first connections
                    for _ in range(50):
                        await call()
                serve, serve_rounds, serve_failed = await measure(
                    serve_calls, args.calls, args.rounds, budget
                )
        consume: dict[str, dict[str, float]] = {}
        consume_rounds = consume_failed = 0
        if not args.no_consume and not budget.spent():
            with served_over_http(doc, 10) as url:
                consumer = load_agent(
                    {"functions": [{"mcp": {"url": url}}]},
                    egress=voicefn.EgressPolicy(allow_private_network=True),
                )
                [mcp_fn] = consumer.functions
                async with (
                    voicefn.Executor(allow_private_network=True) as ex,
                    Client(url) as bare,
                ):

                    async def via_voicefn() -> bool:
                        return (await ex.run(mcp_fn, ARGS, ctx)).ok

                    async def via_sdk() -> bool:
                        return not (await bare.call_tool("check_order", ARGS)).is_error

                    consume_calls = {"consume_voicefn": via_voicefn, "consume_sdk": via_sdk}
                    for call in consume_calls.values():
                        for _ in range(20):
                            await call()
                    consume, consume_rounds, consume_failed = await measure(
                        consume_calls, max(args.calls // 4, 20), args.rounds, budget
                    )
    added = {
        name: serve[name]["p50_ms"] - serve["direct"]["p50_ms"]
        for name in ("serve_jsonrpc", "serve_dispatch")
        if name in serve
    }
    if "sdk_floor" in serve and "serve_jsonrpc" in serve:
        added["adapter_only"] = serve["serve_jsonrpc"]["p50_ms"] - serve["sdk_floor"]["p50_ms"]
    if consume:
        added["consume_voicefn"] = (
            consume["consume_voicefn"]["p50_ms"] - consume["consume_sdk"]["p50_ms"]
        )
    return {
        "environment": environment(voicefn=voicefn.__version__, mcp=_version(mcp)),
        "calls_per_round": args.calls,
        "rounds": {"serve": serve_rounds, "consume": consume_rounds},
        "serve": serve,
        "consume": consume,
        "added_p50_ms": added,
        "target_ms": TARGET_MS,
        "serve_within_target": bool(added) and added.get("serve_jsonrpc", 1e9) < TARGET_MS,
        "cut_short": budget.exhausted,
        "failures": serve_failed + consume_failed,
    }


def _version(module: Any) -> str:
    from importlib.metadata import version

    return version(module.__name__)


def print_table(data: dict[str, Any]) -> None:
    env = data["environment"]
    print(f"MCP adapter overhead ({environment_line(env, 'voicefn', 'mcp')})")
    rounds = data["rounds"]
    print(
        f"one call at a time, {data['calls_per_round']} calls per path per round, "
        f"{rounds['serve']} rounds (consume: {rounds['consume']}); medians of per-round figures"
    )
    rows = [
        ("direct", "Executor.run (floor)", "serve"),
        ("serve_jsonrpc", "MCP tools/call, JSON-RPC in memory", "serve"),
        ("serve_dispatch", "MCP tools/call, direct dispatch", "serve"),
        ("sdk_floor", "SDK floor: bare server running it", "serve"),
        ("consume_sdk", "consume: bare SDK client over HTTP", "consume"),
        ("consume_voicefn", "consume: Executor.run of an mcp function", "consume"),
    ]
    print(f"{'path':44} {'p50':>9} {'p90':>9} {'added p50':>10}")
    for key, label, group in rows:
        fig = data[group].get(key)
        if fig is None:
            continue
        added = data["added_p50_ms"].get(key)
        shown = f"{added:+.3f} ms" if added is not None else ""
        print(f"{label:44} {fig['p50_ms']:7.3f}ms {fig['p90_ms']:7.3f}ms {shown:>10}")
    verdict = "met" if data["serve_within_target"] else "NOT met"
    print(f"target: serving adds < {data['target_ms']} ms at p50 over direct: {verdict}")
    own = data["added_p50_ms"].get("adapter_only")
    if own is not None:
        print(f"of which voicefn's adapter (beyond the SDK floor): {own:+.3f} ms")
    if data["cut_short"]:
        print("(cut short by --max-seconds)")
    if data["failures"]:
        print(f"{data['failures']} call(s) failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per path per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--no-consume", action="store_true", help="serve direction only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = asyncio.run(run(args))
    emit(data, args.json, print_table)
    sys.exit(1 if data["failures"] else 0)


if __name__ == "__main__":
    main()
