"""The MCP client side: reach a server, list its tools, call them.

A server is reached over streamable HTTP behind the egress policy (the name is resolved here and
only checked addresses are connected to, on every connection and redirect hop), or as a local
command over stdio, which only an operator can allow (a command runs on this host).

A :class:`Connection` owns one live MCP session in a task of its own (the SDK's task groups must
be entered and left by the same task); calls from any task share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..egress import EgressDenied, EgressPolicy
from ._guard import extra

with extra("mcp"):
    import anyio
    import httpcore2
    import httpx2
    import mcp_types
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client

__all__ = [
    "CommandNotAllowed",
    "Connection",
    "ServerAddress",
    "list_tools",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
CLIENT_INFO = mcp_types.Implementation(name="voicefn", version="0.1")
#: Connect and handshake; a ``command`` may need a while to start (``npx`` fetching a package).
CONNECT_TIMEOUT_S = 30.0


class CommandNotAllowed(Exception):
    """A ``command`` MCP server was asked for where the operator has not allowed commands."""


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where an MCP server is: a URL (with the headers to send, already rendered) or a command.

    Hashable: the Executor keeps one connection per address (and tenant).
    """

    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None

    @property
    def label(self) -> str:
        return self.url or " ".join([self.command or "", *self.args]).strip()


# ----------------------------------------------------------------------------- egress


async def _resolve(host: str, port: int) -> list[IPAddress]:
    bare = host.strip("[]")
    try:
        return [ipaddress.ip_address(bare)]
    except ValueError:
        pass
    infos = await anyio.getaddrinfo(
        bare.encode("idna").decode("ascii"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    out: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


def _allowed(policy: EgressPolicy, host: str, addresses: Iterable[IPAddress]) -> list[IPAddress]:
    """The addresses the policy allows; all refused: the first refusal is raised."""
    allowed: list[IPAddress] = []
    denial: EgressDenied | None = None
    for ip in addresses:
        try:
            policy.check_address(host, ip)
        except EgressDenied as exc:
            denial = denial or exc
        else:
            allowed.append(ip)
    if not allowed and denial is not None:
        raise denial
    return allowed


class _EgressBackend(httpcore2.AsyncNetworkBackend):
    """Resolves the host, checks every address and connects to checked addresses only (TLS
    still verifies the name: httpcore2 sends the origin's host as SNI)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = await _resolve(host, port)
        except OSError as exc:
            raise httpcore2.ConnectError(f"could not resolve {host}: {exc}") from exc
        last: Exception | None = None
        for ip in _allowed(self.policy, host, addresses):
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore2.ConnectError(f"{host} did not resolve to any address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise EgressDenied("Unix domain sockets are not allowed by the egress policy.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _EgressTransport(httpx2.AsyncBaseTransport):
    """Every request (and so every redirect hop the SDK follows) is checked by ``check_url``;
    every new connection by the backend above. No proxy, no settings from the environment."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._http = httpx2.AsyncHTTPTransport(trust_env=False)
        self._http._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=10,
            network_backend=_EgressBackend(policy),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.policy.check_url(str(request.url))
        return await self._http.handle_async_request(request)

    async def aclose(self) -> None:
        await self._http.aclose()


async def check_reachable(policy: EgressPolicy, url: str) -> None:
    """Refuse, before anything is sent, a URL whose every address the policy refuses (the
    connection is checked again when it is made: no DNS-rebinding window)."""
    policy.check_url(url)
    parsed = httpx2.URL(url)
    with contextlib.suppress(OSError):  # unresolvable: the connection attempt says so
        _allowed(policy, parsed.host, await _resolve(parsed.host, parsed.port or 443))


# ------------------------------------------------------------------------- connection


@contextlib.asynccontextmanager
async def _transport(
    server: ServerAddress, policy: EgressPolicy, allow_commands: bool
) -> AsyncIterator[Any]:
    if server.url is not None:
        await check_reachable(policy, server.url)
        client = httpx2.AsyncClient(
            transport=_EgressTransport(policy),
            headers=dict(server.headers),
            timeout=httpx2.Timeout(CONNECT_TIMEOUT_S, read=300.0),
            trust_env=False,
        )
        async with client, streamable_http_client(server.url, http_client=client) as streams:
            yield streams
        return
    if not allow_commands:
        raise CommandNotAllowed(
            f"running the MCP server command {server.label!r} is not allowed here: a command "
            "runs on this host with its rights"
        )
    params = StdioServerParameters(
        command=server.command or "",
        args=list(server.args),
        env=dict(server.env) or None,
        cwd=server.cwd,
    )
    async with stdio_client(params) as streams:
        yield streams


@dataclass(eq=False)
class Connection:
    """One live MCP session, owned by a task of its own; :meth:`call` from any task."""

    server: ServerAddress
    policy: EgressPolicy
    allow_commands: bool = False
    client: Client | None = field(default=None, init=False)
    _ready: asyncio.Future[None] | None = field(default=None, init=False)
    _closing: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _owner: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def alive(self) -> bool:
        return self._owner is not None and not self._owner.done() and not self._closing.is_set()

    async def open(self, within_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect and finish the handshake (idempotent; concurrent callers wait together)."""
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._owner = asyncio.create_task(self._own(), name=f"mcp {self.server.label}")
        try:
            async with asyncio.timeout(within_s):
                await asyncio.shield(self._ready)
        except TimeoutError:
            await self.aclose()
            raise TimeoutError(
                f"the MCP server {self.server.label} did not answer the handshake within "
                f"{within_s:g} s"
            ) from None

    async def _own(self) -> None:
        assert self._ready is not None
        try:
            transport = _transport(self.server, self.policy, self.allow_commands)
            async with Client(transport, client_info=CLIENT_INFO, cache=None) as client:
                self.client = client
                self._ready.set_result(None)
                await self._closing.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(_unwrap(exc))
                self._ready.exception()  # retrieved: callers still get it when they await
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.client = None
            self._closing.set()

    async def call(
        self, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> mcp_types.CallToolResult:
        """Call ``tool``; a connection that dies meanwhile raises ``ConnectionError``."""
        await self.open()
        client = self.client
        if client is None or self._owner is None:
            raise ConnectionError(f"the connection to {self.server.label} is closed")
        request = asyncio.ensure_future(client.call_tool(tool, arguments, meta=meta))  # type: ignore[arg-type]
        done, _ = await asyncio.wait({request, self._owner}, return_when=asyncio.FIRST_COMPLETED)
        if request not in done:
            request.cancel()
            with contextlib.suppress(BaseException):
                await request
            raise ConnectionError(f"the connection to {self.server.label} closed during the call")
        return request.result()

    async def list_tools(self) -> list[mcp_types.Tool]:
        await self.open()
        assert self.client is not None
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(100):  # a paginator that never ends cannot hang a load
            page = await self.client.list_tools(cursor=cursor)
            tools += page.tools
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    async def aclose(self) -> None:
        self._closing.set()
        owner = self._owner
        if owner is not None and not owner.done():
            done, _ = await asyncio.wait({owner}, timeout=5)
            if not done:  # a server that will not let go: stop waiting for it
                owner.cancel()
                with contextlib.suppress(BaseException):
                    await owner


def _unwrap(exc: BaseException) -> BaseException:
    """The first real error inside the SDK's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def list_tools(
    server: ServerAddress,
    policy: EgressPolicy,
    *,
    allow_commands: bool = False,
    within_s: float = CONNECT_TIMEOUT_S,
) -> list[mcp_types.Tool]:
    """Connect, list every tool, disconnect."""
    conn = Connection(server, policy, allow_commands)
    try:
        await conn.open(within_s)
        async with asyncio.timeout(within_s):
            return await conn.list_tools()
    finally:
        await conn.aclose()


def headers_tuple(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(headers.items()))
