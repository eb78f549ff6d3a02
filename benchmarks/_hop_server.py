"""The bare floor of "an HTTP hop" in front of the Executor (run as its own process).

    python benchmarks/_hop_server.py FUNCTION_JSON [--max-seconds 300]

A minimal aiohttp server on 127.0.0.1 (on uvloop, as ``voicefn serve`` is): every ``POST`` reads
``{"arguments": ..., "context": {"call_sid": ...}}``, runs the one function given on the command
line through a shared :class:`voicefn.Executor` (private network allowed) and answers the
ToolResult's fields as JSON (orjson). No authentication, no lookups, no recording, no access log,
no metrics: what any HTTP service in front of the engine pays on this machine, and nothing more.

The bound port is printed on stdout as ``PORT <n>`` once the server listens. The server stops when
its stdin reaches EOF (the parent closed it or died) or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

import orjson
from aiohttp import web

import voicefn
from _loopback_server import until_stdin_closes


async def serve(document: dict[str, object], max_seconds: float) -> None:
    function = voicefn.load_function(document)
    async with voicefn.Executor(allow_private_network=True) as executor:

        async def run(request: web.Request) -> web.Response:
            body = orjson.loads(await request.read())
            call = body.get("context") or {}
            context = voicefn.CallContext(
                call_sid=call.get("call_sid"), agent_id="bench", workspace_id="bench"
            )
            result = await executor.run(
                function, body.get("arguments"), context, tool_call_id=body.get("tool_call_id")
            )
            out = {
                "function": result.function,
                "ok": result.ok,
                "content": result.content,
                "status": result.status,
                "error": result.error,
                "data": result.data,
                "total_ms": result.timings.total_ms,
            }
            return web.Response(body=orjson.dumps(out), content_type="application/json")

        app = web.Application()
        app.router.add_post("/{tail:.*}", run)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(runner, sock, backlog=1024)
        await site.start()
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        try:
            await until_stdin_closes(max_seconds, "hop server")
        finally:
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("function", help="the function document, as JSON")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(json.loads(args.function), args.max_seconds))
    else:
        uvloop.run(serve(json.loads(args.function), args.max_seconds))


if __name__ == "__main__":
    main()
