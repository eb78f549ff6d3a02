"""The engine's HTTP transport: aiohttp's pooled connector behind the egress policy.

Chosen by measurement (``benchmarks/http_overhead.py`` keeps bare httpx, bare aiohttp and this
stack side by side): httpx's pool was the ceiling of the whole engine. What stays guaranteed:

* **The policy on the connected address.** :class:`EgressResolver` resolves every hostname,
  checks every address with :meth:`EgressPolicy.check_address` and hands aiohttp only the
  allowed ones, so it connects to a checked address (no DNS-rebinding window). IP literals,
  which aiohttp does not resolve, are checked on the host aiohttp will connect to.
* **One request, as given.** No redirects (``voicefn.outbound.fetch`` follows them, checking
  each hop), no decompression (``fetch`` decodes within its budget), no cookie jar, no proxy
  or settings from the environment, no timeout of its own (callers bound the whole request).

The seam is small: ``await transport.send(request) -> RawResponse``; ``fetch`` needs nothing
else, and a test can hand it any object with that method.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Protocol

import aiohttp
import certifi
from aiohttp import hdrs
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict
from yarl import URL

from .egress import EgressDenied, EgressPolicy

if TYPE_CHECKING:
    from .outbound import Request

__all__ = [
    "AiohttpTransport",
    "EgressResolver",
    "Headers",
    "RawResponse",
    "Transport",
    "default_ssl_context",
]

#: Headers httpx adds to a request that aiohttp must compute itself for what it sends.
_COMPUTED = frozenset({"host", "content-length", "transfer-encoding"})
_SKIP_AUTO = frozenset({"Content-Type"})
# Methods aiohttp never gives a Content-Type of its own when they have no body.
_NO_AUTO_TYPE = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


def default_ssl_context() -> ssl.SSLContext:
    """Certificate checks against certifi's roots (as httpx does), hostname verified."""
    return ssl.create_default_context(cafile=certifi.where())


#: Response headers: case-insensitive; ``items()`` gives every value of a repeated header.
Headers = Mapping[str, str]


class RawResponse(Protocol):
    status_code: int
    headers: Headers

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes:
        """The whole raw body: only for a body whose declared length is within budget."""
        ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    async def send(self, request: Request) -> RawResponse: ...

    async def aclose(self) -> None: ...


class EgressResolver(AbstractResolver):
    """Resolves a hostname and yields only the addresses the policy allows (all refused: the
    first :class:`EgressDenied`)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, family=family
        )
        allowed: list[ResolveResult] = []
        denial: EgressDenied | None = None
        for fam, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0]).split("%", 1)[0]
            try:
                self.policy.check_address(host, ipaddress.ip_address(address))
            except EgressDenied as exc:
                denial = denial or exc
                continue
            allowed.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=int(sockaddr[1]),
                    family=fam,
                    proto=proto,
                    flags=_NUMERIC,
                )
            )
        if not allowed:
            if denial is not None:
                raise denial
            raise OSError(f"{host} did not resolve to any address")
        return allowed

    async def close(self) -> None:
        return None


class _Response:
    __slots__ = ("_complete", "_response", "headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._complete = False
        self.status_code = response.status
        self.headers: Headers = response.headers

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk
        self._complete = True

    async def aread(self) -> bytes:
        body = await self._response.read()
        self._complete = True
        return body

    async def aclose(self) -> None:
        if self._complete:
            self._response.release()  # the connection goes back to the pool
        else:
            self._response.close()  # unread data: the connection is not reused


class AiohttpTransport:
    """A pooled aiohttp connector enforcing ``policy`` (see the module docstring).

    The session is made on first use, inside the running event loop.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        max_connections: int = 200,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.max_connections = max_connections
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._checked: set[tuple[str, str]] = set()
        self._urls: dict[str, URL] = {}  # parsed request URLs whose origin passed check_url

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,
            resolver=EgressResolver(self.policy),
            ssl=self._ssl if self._ssl is not None else default_ssl_context(),
            ttl_dns_cache=10,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
            requote_redirect_url=False,
        )
        return self._session

    async def send(self, request: Request) -> RawResponse:
        url = self._urls.get(request.url)
        if url is None:
            url = URL(request.url, encoded=True)
            host = url.raw_host or ""
            # check_url depends on the scheme and host alone: a pass is remembered (bounded),
            # as is the parsed URL (a refusal raises before either is).
            if (url.scheme, host) not in self._checked:
                self.policy.check_url(request.url)
                literal = _ip_literal(host)
                if literal is not None:  # aiohttp connects to a literal without the resolver
                    self.policy.check_address(host, literal)
                if len(self._checked) >= 4096:
                    self._checked.clear()
                self._checked.add((url.scheme, host))
            if len(self._urls) >= 1024:
                self._urls.clear()
            self._urls[request.url] = url
        session = self._session or self._open()
        headers = CIMultiDict(request.headers)
        for name in _COMPUTED:
            if name in headers:
                del headers[name]
        # aiohttp adds "Content-Type: application/octet-stream" to a POST, PUT or PATCH that has
        # none (with or without a body): what we send carries exactly the headers it was given.
        skip = None if hdrs.CONTENT_TYPE in headers else _SKIP_AUTO
        if request.body is None:
            response = await session.request(
                request.method,
                url,
                headers=headers,
                allow_redirects=False,
                skip_auto_headers=None if request.method in _NO_AUTO_TYPE else skip,
            )
        else:
            response = await session.request(
                request.method,
                url,
                headers=headers,
                data=request.body,
                allow_redirects=False,
                skip_auto_headers=skip,
            )
        return _Response(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
