"""The platform's commands: ``serve``, ``keys create``, ``push`` and ``pull``.

``register(app)`` adds them to the ``voicefn`` Typer application. Each command imports the
server parts it needs when it runs, so ``voicefn --help`` stays fast.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, FIRST_WORKSPACE

if TYPE_CHECKING:
    from .config import ServerConfig

DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"

DataDirOpt = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="VOICEFN_DATA_DIR",
        help="Where the SQLite database, the secret key and the execution journal live.",
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="VOICEFN_DATABASE_URL",
        help="postgresql://user@host/db (default: SQLite in the data directory).",
    ),
]
UrlOpt = Annotated[
    str, typer.Option("--url", envvar="VOICEFN_URL", help="The running service's address.")
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="VOICEFN_API_KEY", help="An API key of the workspace."),
]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _warn(line: str) -> None:
    sys.stderr.write(f"warning: {line}\n")
    sys.stderr.flush()


def _fail(line: str, code: int = 1) -> typer.Exit:
    sys.stderr.write(f"error: {line}\n")
    return typer.Exit(code)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ----------------------------------------------------------------------------- serve


def serve_cmd(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = DEFAULT_PORT,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database_url: DatabaseOpt = None,
    allow_private_network: Annotated[
        bool,
        typer.Option(
            "--allow-private-network",
            envvar="VOICEFN_ALLOW_PRIVATE_NETWORK",
            help="Default for every workspace: allow loopback/private addresses.",
        ),
    ] = False,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            envvar="VOICEFN_ALLOW",
            help="Default for every workspace: a host or CIDR allowed despite the egress "
            "policy (repeatable).",
        ),
    ] = None,
    https_only: Annotated[
        bool,
        typer.Option(
            "--https-only", envvar="VOICEFN_HTTPS_ONLY", help="Default: refuse plain-http URLs."
        ),
    ] = False,
    sandbox: Annotated[
        str,
        typer.Option(
            "--sandbox",
            envvar="VOICEFN_SANDBOX",
            help="How customer code runs: isolated (default) or unsafe-process (one trusted "
            "workspace only).",
        ),
    ] = "isolated",
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
    shutdown_timeout: Annotated[
        int,
        typer.Option(
            "--shutdown-timeout",
            help="Seconds a graceful shutdown (SIGTERM/Ctrl-C) waits for in-flight requests.",
        ),
    ] = 30,
) -> None:
    """Run the platform: the REST API (docs at /docs), the dashboard and /metrics."""
    from .config import EgressDefaults, ServerConfig

    if sandbox not in ("isolated", "unsafe-process"):
        raise typer.BadParameter("use isolated or unsafe-process", param_hint="--sandbox")
    if sandbox == "unsafe-process":
        _warn(
            "--sandbox unsafe-process gives NO isolation between tenants: use it only for code "
            "you trust, with a single workspace"
        )
    from ..egress import EgressPolicy

    try:
        EgressPolicy.from_strings(allow or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--allow") from None
    config = ServerConfig(
        data_dir=data_dir,
        database_url=database_url,
        egress=EgressDefaults(
            allow=tuple(allow or ()),
            allow_private_network=allow_private_network,
            https_only=https_only,
            sandbox_mode="unsafe-process" if sandbox == "unsafe-process" else "isolated",
        ),
    )
    if not is_loopback(host):
        _warn(
            f"binding to {host} exposes the API beyond this machine over plain HTTP: API keys "
            "would travel unencrypted. Put it behind TLS (a reverse proxy such as Caddy or "
            "nginx), or bind to 127.0.0.1."
        )
    code = run_server(config, host, port, log_level, shutdown_timeout)
    raise typer.Exit(code)


def run_server(
    config: ServerConfig, host: str, port: int, log_level: str, shutdown_timeout: int
) -> int:
    import uvicorn

    from . import logs
    from .app import create_app
    from .platform import Platform

    logs.configure(log_level)
    app = create_app(config)
    platform: Platform = app.state.platform

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if not self.started:
                return
            bound = port
            for server in getattr(self, "servers", []):
                for sock in server.sockets:
                    bound = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{bound}"
            db = platform.store.backend
            _say(f"voicefn serve: {url}  ({db}, data in {config.data_dir.resolve()})")
            if platform.first_key is not None:
                _say(f"API key: {platform.first_key.secret}")
                _say(
                    "  (the first workspace's operator key: shown once, keep it; "
                    "more with `voicefn keys create`)"
                )
            _say(f"Dashboard: {url}/   API docs: {url}/docs")

    server = Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=shutdown_timeout,
            server_header=False,
        )
    )
    try:
        server.run()
    except Exception as exc:  # a start failure: say it in one line
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0 if server.started else 1


# ----------------------------------------------------------------------------- keys

keys_app = typer.Typer(
    help="API keys of a workspace (run where the service's database is).",
    no_args_is_help=True,
)


@keys_app.command("create")
def keys_create_cmd(
    workspace: Annotated[
        str,
        typer.Option("--workspace", help="The workspace (created when it does not exist)."),
    ] = FIRST_WORKSPACE,
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "cli key",
    operator: Annotated[
        bool, typer.Option("--operator", help="May manage workspaces and settings.")
    ] = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database_url: DatabaseOpt = None,
) -> None:
    """Create an API key and print it alone on stdout (the first key of a new database is an
    operator key, like the one the first `voicefn serve` prints)."""
    import asyncio

    from ..store import SecretBox, SecretKeyError, open_store
    from ..store import database_url as resolve_url

    async def create() -> str:
        box = SecretBox.load(data_dir)
        store = await open_store(resolve_url(data_dir, database_url), box)
        try:
            async with store.write() as repos:
                first = not await repos.workspaces.count()
                ws = await repos.workspaces.by_name(workspace)
                if ws is None:
                    ws = await repos.workspaces.create(workspace)
                    _note(f"created workspace {workspace!r}")
                if first and not operator:
                    _note("the first key of a new database is an operator key")
                new = await repos.keys.create(ws, name, operator=operator or first)
            return new.secret
        finally:
            await store.close()

    try:
        secret = asyncio.run(create())
    except (SecretKeyError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    _say(secret)


def _note(line: str) -> None:
    sys.stderr.write(line + "\n")


# ----------------------------------------------------------------------------- push/pull


def _client(url: str, api_key: str | None) -> Any:
    import httpx

    if not api_key:
        raise _fail("give an API key: --api-key or VOICEFN_API_KEY", 2)
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30.0,
        trust_env=False,
    )


def _report_error(response: Any) -> typer.Exit:
    try:
        body = response.json()
    except ValueError:
        return _fail(f"the service answered {response.status_code}: {response.text[:300]}")
    sys.stderr.write(f"error: {body.get('message') or body.get('error')}\n")
    for p in body.get("problems") or []:
        found = "" if p.get("found") is None else f" (found {json.dumps(p['found'])})"
        sys.stderr.write(f"  {p['severity']} {p['path']}: {p['message']}{found}\n")
        sys.stderr.write(f"      fix: {p['fix']}\n")
    return typer.Exit(1)


def agent_document(path: Path) -> dict[str, Any]:
    """The agent file with every function file it names embedded (paths are relative to it),
    and each ``{mcp: ...}`` entry replaced by the functions its server lists (asked from here,
    as ``voicefn tools`` does: the service itself never contacts a tenant's MCP server)."""
    from ..dialects import read_documents, read_file

    data = read_file(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not an agent file (an object with name, system_prompt, ...)")
    items = data.get("functions") or []
    expanded: dict[int, list[dict[str, Any]]] = {}
    if any(isinstance(item, dict) and "mcp" in item for item in items):
        from ..runtime.agent import validate_agent
        from ..validation import FunctionValidationError

        report = validate_agent(path)
        if not report.ok:
            raise FunctionValidationError(report.all_problems(), str(path))
        for entry in report.functions:
            expanded[entry.index] = [r.function.to_dict() for r in entry.reports if r.function]
    functions: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            functions.extend(read_documents(path.parent / item))
        elif isinstance(item, dict) and "mcp" in item:
            functions.extend(expanded.get(i, []))
        else:
            functions.append(item)
    if "functions" in data:
        data["functions"] = functions
    return data


def push_cmd(
    file: Annotated[Path, typer.Argument(help="An agent file (YAML or JSON).")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Create or update an agent and its functions on a running service, from its file.

    The agent is matched by name; its functions become exactly those the file lists."""
    import httpx

    from ..validation import FunctionValidationError

    try:
        document = agent_document(file)
    except FunctionValidationError as exc:
        for p in exc.problems:
            sys.stderr.write(f"  {p}\n")
        raise _fail(f"{file}: cannot read it") from None
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    try:
        with _client(url, api_key) as client:
            response = client.post("/v1/agents/import", json=document)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {url}: {exc}") from None
    if response.status_code != 200:
        raise _report_error(response)
    body = response.json()
    agent = body["agent"]
    counts: dict[str, int] = {}
    for f in body["functions"]:
        counts[f["change"]] = counts.get(f["change"], 0) + 1
    summary = ", ".join(f"{n} {change}" for change, n in counts.items()) or "no functions"
    verb = "created" if body["created"] else "updated"
    _say(f"{verb} agent {agent['name']} ({agent['id']}): functions {summary}")
    for p in body.get("problems") or []:
        sys.stderr.write(f"  warning {p['path']}: {p['message']}\n")


def pull_cmd(
    agent_id: Annotated[str, typer.Argument(help="The agent's id.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False,
    include_secrets: Annotated[
        bool,
        typer.Option(
            "--include-secrets",
            help="Write the real secret values (they are [secret] otherwise; pushing [secret] "
            "back keeps the stored value).",
        ),
    ] = False,
) -> None:
    """Write an agent and its functions as one file `voicefn call` and `voicefn push` read."""
    import httpx

    params = {
        "format": "json" if as_json else "yaml",
        "include_secrets": str(include_secrets).lower(),
    }
    try:
        with _client(url, api_key) as client:
            response = client.get(f"/v1/agents/{agent_id}/export", params=params)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {url}: {exc}") from None
    if response.status_code != 200:
        raise _report_error(response)
    if out is None:
        sys.stdout.write(response.text if response.text.endswith("\n") else response.text + "\n")
        return
    if include_secrets:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(response.text)
    else:
        out.write_text(response.text, encoding="utf-8")
    sys.stderr.write(f"wrote {out}\n")


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``keys``, ``push`` and ``pull`` to the ``voicefn`` application."""
    app.command("serve")(serve_cmd)
    app.add_typer(keys_app, name="keys")
    app.command("push")(push_cmd)
    app.command("pull")(pull_cmd)
