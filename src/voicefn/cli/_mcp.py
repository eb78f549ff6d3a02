"""``voicefn mcp``: serve an agent's functions as MCP tools; import an MCP server's tools.

``mcp serve AGENT`` speaks MCP on stdin/stdout (what desktop MCP clients start), or streamable
HTTP with ``--http``. Nothing but MCP is ever written to stdout while serving over stdio.
``mcp import URL`` (or ``--command``) prints the server's tools as function documents.
"""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import (
    DIALECT_NAMES,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    AllowOpt,
    HttpsOnlyOpt,
    JsonOpt,
    PrivateOpt,
    SandboxOpt,
    VarOpt,
    app,
    check_dialect,
    context_from,
    err,
    escape,
    fail,
    parse_vars,
    print_json,
    problem_line,
    sandbox_mode,
    warn,
)

if TYPE_CHECKING:
    from ..egress import EgressPolicy
    from ..runtime.agent import Agent

mcp_app = typer.Typer(
    name="mcp",
    help="MCP both ways: serve an agent's functions as MCP tools, import an MCP server's tools.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(mcp_app, name="mcp")

CommandsOpt = Annotated[
    bool,
    typer.Option(
        "--allow-mcp-commands",
        envvar="VOICEFN_ALLOW_MCP_COMMANDS",
        help="Allow MCP servers started from a command (they run on this host with your rights).",
    ),
]


def _policy(
    allow_private_network: bool, allow: list[str] | None, https_only: bool, as_json: bool
) -> EgressPolicy:
    from ..egress import EgressPolicy

    try:
        return EgressPolicy.from_strings(
            allow or (), allow_private_network=allow_private_network, https_only=https_only
        )
    except ValueError as exc:
        fail(str(exc), as_json=as_json, code=EXIT_USAGE, kind="usage")


def _agent(
    path: Path, values: dict[str, str], policy: EgressPolicy, commands: bool, as_json: bool
) -> Agent:
    from ..runtime.agent import validate_agent

    report = validate_agent(path, variables=values, egress=policy, allow_mcp_commands=commands)
    problems = report.all_problems()
    if not report.ok or report.agent is None:
        fail(
            f"invalid agent: {len(report.errors)} error(s)",
            as_json=as_json,
            problems=problems,
            source=str(path),
        )
    for p in problems:  # warnings: stderr, never stdout (stdio serving owns it)
        err.print(problem_line(p))
    return report.agent


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket made with ``IPPROTO_TCP`` (asyncio sets ``TCP_NODELAY`` only on
    connections whose socket says so: without it every answer waits ~40 ms for a delayed ACK)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


class _BearerGate:
    """Refuses every HTTP request without ``Authorization: Bearer <token>`` (401)."""

    def __init__(self, inner: Any, token: str) -> None:
        self.inner = inner
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import hmac

        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = b'{"error": "unauthorized", "detail": "send Authorization: Bearer <token>"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.inner(scope, receive, send)


@mcp_app.command("serve")
def serve_cmd(
    agent_file: Annotated[Path, typer.Argument(help="An agent file (YAML or JSON).")],
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP instead of stdio.")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="With --http: the address.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="With --http: the port (0 picks a free one).")
    ] = 8000,
    path: Annotated[str, typer.Option("--path", help="With --http: the endpoint path.")] = "/mcp",
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="VOICEFN_MCP_TOKEN",
            help="With --http: require Authorization: Bearer TOKEN on every request.",
        ),
    ] = None,
    var: VarOpt = None,
    allow_private_network: PrivateOpt = False,
    allow: AllowOpt = None,
    https_only: HttpsOnlyOpt = False,
    sandbox: SandboxOpt = "isolated",
    allow_mcp_commands: CommandsOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Serve an agent's in-call functions as MCP tools (stdio, or streamable HTTP with --http).

    Each tool is one function: its description, and its JSON Schema without the parameters the
    call context fills (--var, the agent's variables). A failed function is a tool result with
    isError. Runs until the client disconnects (stdio) or Ctrl-C (HTTP).
    """
    import asyncio

    values = parse_vars(var)
    mode = sandbox_mode(sandbox)
    policy = _policy(allow_private_network, allow, https_only, as_json)
    agent = _agent(agent_file, values, policy, allow_mcp_commands, as_json)
    if not path.startswith("/"):
        raise typer.BadParameter("the path starts with /, e.g. /mcp", param_hint="--path")
    listener: socket.socket | None = None
    if http:
        try:
            listener = listen(host, port)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", as_json=as_json)

    async def main() -> None:
        from ..executor import Executor
        from ..integrations.mcp import build_server, http_app, serve_stdio

        async with Executor(
            egress=policy, sandbox_mode=mode, allow_mcp_commands=allow_mcp_commands
        ) as ex:
            server = build_server(agent, ex, lambda: context_from(var))
            if listener is None:
                await serve_stdio(server)
                return
            await _serve_http(
                http_app(server, path=path, host=host), listener, path, token, as_json
            )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    raise typer.Exit(EXIT_OK)


async def _serve_http(
    app: Any, listener: socket.socket, path: str, token: str | None, as_json: bool
) -> None:
    import uvicorn

    bound_host, bound_port = listener.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}{path}"
    if token:
        app = _BearerGate(app, token)
    elif bound_host not in ("127.0.0.1", "::1"):
        warn(
            f"no --token: anyone who can reach {shown}:{bound_port} can run this agent's functions"
        )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    if as_json:  # one line, flushed: whoever started this reads it while the server runs
        print(json.dumps({"ok": True, "url": url}), flush=True)
    else:
        err.print(f"serving MCP at {escape(url)} (Ctrl-C stops)")
    await server.serve(sockets=[listener])


@mcp_app.command("import")
def import_cmd(
    url: Annotated[
        str | None, typer.Argument(help="The server's streamable HTTP URL (or use --command).")
    ] = None,
    command: Annotated[
        str | None,
        typer.Option("--command", help="Start this program and speak MCP over its stdio."),
    ] = None,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="An argument of --command (repeatable).")
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="A header for the server, 'Name: value' (repeatable)."),
    ] = None,
    tool: Annotated[
        list[str] | None,
        typer.Option("--tool", help="Import only this tool (repeatable; default: all)."),
    ] = None,
    to: Annotated[str, typer.Option("--to", help="Output dialect.")] = "voicefn",
    allow_private_network: PrivateOpt = False,
    allow: AllowOpt = None,
    https_only: HttpsOnlyOpt = False,
    allow_mcp_commands: CommandsOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Print an MCP server's tools as functions (a JSON list), each calling its tool.

    The same functions an agent gets from a functions entry {mcp: {url: ...}}; listing them
    connects to the server (egress policy) or starts the command (--allow-mcp-commands).
    """
    import asyncio

    check_dialect(to, DIALECT_NAMES)
    if (url is None) == (command is None):
        raise typer.BadParameter("give the server's URL or --command, not both", param_hint="URL")
    headers: dict[str, str] = {}
    for item in header or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{item!r}: write 'Name: value'", param_hint="--header")
        headers[name.strip()] = value.strip()
    entry: dict[str, Any] = {"url": url} if url is not None else {"command": command}
    if arg:
        entry["args"] = list(arg)
    if headers:
        entry["headers"] = headers
    if tool:
        entry["allowed_tools"] = list(tool)
    policy = _policy(allow_private_network, allow, https_only, as_json)
    from ..integrations.mcp_entry import entry_functions, parse_entry

    parsed, problems = parse_entry(entry)
    if parsed is None:
        fail("invalid server", as_json=as_json, code=EXIT_USAGE, problems=problems, kind="usage")
    docs, problems = asyncio.run(
        entry_functions(parsed, egress=policy, allow_commands=allow_mcp_commands)
    )
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        fail(f"cannot import from {parsed.label}", as_json=as_json, problems=problems)
    from ..dialects import dump, validate

    out_docs: list[dict[str, Any]] = []
    warnings = [str(p) for p in problems]
    for doc in docs:
        report = validate(doc, "voicefn")
        if report.function is None:
            warnings += [f"{doc['name']}: {p}" for p in report.errors]
            continue
        try:
            written, lost = dump(report.function, to)
        except ValueError as exc:
            fail(str(exc), as_json=as_json, code=EXIT_USAGE, kind="usage")
        warnings += [f"{doc['name']}: {to} cannot carry {what}; dropped" for what in lost]
        out_docs.append(written)
    if as_json:
        print_json({"ok": True, "functions": out_docs, "warnings": warnings})
        raise typer.Exit(EXIT_OK)
    for w in warnings:
        warn(w)
    print_json(out_docs)
    raise typer.Exit(EXIT_OK if out_docs else EXIT_INVALID)
