"""Sending one customer-configured request under the engine's rules, on any of its paths.

HTTP functions, the code sandboxes' ``ctx.http``/``fetch`` and webhooks all go through
:func:`fetch`:

* **Redirects are followed here, not by the client**, so every hop is a new request that the
  egress transport checks (URL and connected address), a ``Location`` the URL parser refuses is a
  clear ``redirects`` failure instead of an exception, the ``Authorization`` header is dropped
  when the origin changes, and a failure names the hop it happened on.
* **The body is read raw and decoded here** (:class:`voicefn.decoding.BoundedDecoder`): stacked
  encodings are undone incrementally and stop at the byte budget, so a decompression bomb costs
  at most ``max_body`` bytes and a few milliseconds of CPU, never the event loop.

Everything that can go wrong with the response is a :class:`FetchFailed` (``reason`` is one of
the HTTP action's reasons). Transport errors (``httpx.HTTPError``) and refusals
(:class:`~voicefn.egress.EgressDenied`) propagate, with :attr:`FetchFailed.hop` context added by
:class:`HopFailed` when they happen after a redirect.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType

import httpx
from multidict import CIMultiDictProxy

from .decoding import ACCEPT_ENCODING, BodyTooLarge, BoundedDecoder, DecodeError
from .egress import EgressPolicy
from .transport import AiohttpTransport, Headers, RawResponse, Transport, default_ssl_context

__all__ = [
    "ACCEPT_ENCODING",
    "REDIRECT_STATUSES",
    "Deadlines",
    "FetchFailed",
    "Fetched",
    "HopFailed",
    "Request",
    "TenantTransports",
    "fetch",
    "make_engine_transport",
    "url_problem",
]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = ("content-type", "content-length", "transfer-encoding", "content-encoding")
_HOST = re.compile(r"^[A-Za-z0-9._:-]+$")  # names, IPv4 and (unbracketed) IPv6 literals
_ORIGIN_HEADERS = ("authorization", "proxy-authorization", "cookie")


@dataclass(slots=True)
class Request:
    """One outbound request as the engine built it: ``url`` absolute and already encoded (as
    ``str(httpx.URL(...))`` gives it), ``headers`` in order with their case, ``body`` bytes.
    The transport adds ``Host`` and ``Content-Length`` itself."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    headers: Headers
    body: bytes
    url: str  # the last hop's URL


class FetchFailed(Exception):
    """The request cannot be made or its response used: ``reason`` (``invalid_url``,
    ``too_large``, ``redirects``, ``encoding``),
    a ``detail`` sentence, the ``status`` when one was received, the ``hop`` URL when it failed
    after a redirect."""

    def __init__(
        self, reason: str, detail: str, status: int | None = None, hop: str | None = None
    ) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.status, self.hop = reason, detail, status, hop


class HopFailed(Exception):
    """A transport error or refusal on a redirect hop: ``hop`` is that hop's URL and the
    original exception is ``__cause__``."""

    def __init__(self, hop: str, error: Exception) -> None:
        super().__init__(f"on the redirect to {hop}: {error}")
        self.hop = hop
        self.error = error


def make_engine_transport(
    policy: EgressPolicy, *, max_connections: int = 200, ssl_context: ssl.SSLContext | None = None
) -> Transport:
    """The engine's pooled transport (:class:`voicefn.transport.AiohttpTransport`): egress
    policy on every request and connection; no redirects, decoding, cookies or proxies."""
    return AiohttpTransport(policy, max_connections=max_connections, ssl_context=ssl_context)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def url_problem(url: httpx.URL) -> str | None:
    """What makes ``url`` impossible to request (``None``: nothing). Raises for a host the
    parser cannot decode (an invalid IDNA label)."""
    if not url.host:
        return "no host"
    if not _HOST.match(url.raw_host.decode("ascii", "replace")):
        return f"{url.raw_host.decode('ascii', 'replace')!r} is not a valid host name"
    if url.port is not None and not 0 < url.port <= 65535:
        return f"the port {url.port} is outside 1-65535"
    return None


def _next_request(request: Request, response: RawResponse, hop: int) -> Request:
    location = response.headers.get("location", "")
    if not location.strip():
        raise FetchFailed(
            "redirects", f"Endpoint redirected ({response.status_code}) without a Location"
        )
    shown = location if len(location) <= 200 else location[:200] + "…"
    try:
        current = httpx.URL(request.url)
        url = current.join(location.strip())
        problem = url_problem(url)
        target = str(url)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        problem = str(exc) or type(exc).__name__
    if problem is not None:
        raise FetchFailed(
            "redirects",
            f"Redirect {hop} has an invalid Location {shown!r} ({problem})",
            response.status_code,
        )
    if url.scheme not in ("http", "https"):
        raise FetchFailed(
            "redirects",
            f"Redirect {hop} goes to {shown!r}, which is not an http(s) URL",
            response.status_code,
        )
    method, body, drop = request.method, request.body, {"host", "content-length"}
    if (response.status_code == 303 and method != "HEAD") or (
        response.status_code in (301, 302) and method == "POST"
    ):
        method, body = "GET", None
        drop.update(_BODY_HEADERS)
    if _origin(url) != _origin(current):  # credentials never follow to another origin
        drop.update(_ORIGIN_HEADERS)
    headers = [(k, v) for k, v in request.headers if k.lower() not in drop]
    return Request(method, target, headers, body)


async def fetch(
    transport: Transport,
    request: Request,
    *,
    max_body: int,
    max_redirects: int = 5,
) -> Fetched:
    """Send ``request`` (following up to ``max_redirects`` redirects) and read a bounded body.

    Raises :class:`FetchFailed`, :class:`HopFailed` (an error after a redirect),
    ``EgressDenied`` or ``httpx.HTTPError``. The caller bounds the time (``asyncio.timeout`` or :class:`Deadlines`).
    """
    hop = 0
    while True:
        try:
            response = await transport.send(request)
        except Exception as exc:
            if hop:
                raise HopFailed(request.url, exc) from exc
            raise
        try:
            if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                hop += 1
                if hop > max_redirects:
                    raise FetchFailed(
                        "redirects",
                        f"Endpoint redirected more than {max_redirects} times",
                        response.status_code,
                    )
                next_request = _next_request(request, response, hop)
            else:
                body = await _read(response, max_body)
                return Fetched(response.status_code, response.headers, body, request.url)
        except FetchFailed as failed:
            if hop and failed.hop is None and failed.reason != "redirects":
                failed.hop = request.url
            raise
        finally:
            await response.aclose()
        request = next_request


async def _read(response: RawResponse, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchFailed(
            "too_large",
            f"Endpoint returned {declared} bytes, more than the {limit} allowed",
            response.status_code,
        )
    # every Content-Encoding header counts (two headers are two stacked encodings)
    headers = response.headers
    if isinstance(headers, CIMultiDictProxy):  # aiohttp's: case-insensitive, every value
        encodings = headers.getall("content-encoding", [])
    else:
        encodings = [v for k, v in headers.items() if k.lower() == "content-encoding"]
    if not encodings and declared.isdigit():
        return await response.aread()  # exactly the declared length, known to be in budget
    try:
        decoder = BoundedDecoder(", ".join(encodings), limit)
        chunks = [decoder.feed(raw) async for raw in response.aiter_raw()]
        chunks.append(decoder.finish())
    except BodyTooLarge:
        raise FetchFailed(
            "too_large",
            f"Endpoint returned more than the {limit} bytes allowed",
            response.status_code,
        ) from None
    except DecodeError as exc:
        raise FetchFailed(
            "encoding", f"The response could not be decoded: {exc}", response.status_code
        ) from None
    return b"".join(chunks)


class Deadlines:
    """Time limits for many concurrent requests, sharing event-loop timers.

    ``with deadlines.limit(seconds):`` behaves as ``async with asyncio.timeout(seconds):``: when
    the time is up the task is cancelled and the block raises :class:`TimeoutError` (a
    cancellation from elsewhere stays a cancellation). The difference is the cost: instead of
    one loop timer per use (a ``TimerHandle``, a heap push and a cancel: ~5 µs of CPU per
    request, more under load), limits whose deadlines fall in the same ``resolution`` window
    share one timer, cancelled when its last request finishes. A limit fires at its deadline
    rounded up to the window: at most ``resolution`` seconds late.

    One instance serves one event loop at a time (it follows the running loop).
    """

    __slots__ = ("_buckets", "_loop", "_resolution")

    def __init__(self, resolution: float = 0.01) -> None:
        self._resolution = resolution
        self._buckets: dict[int, _Bucket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def limit(self, seconds: float) -> Deadline:
        return Deadline(self, seconds)

    def _join(self, limit: Deadline, loop: asyncio.AbstractEventLoop, seconds: float) -> _Bucket:
        if loop is not self._loop:  # another loop (a test's): the old timers are gone with it
            self._buckets = {}
            self._loop = loop
        key = math.ceil((loop.time() + seconds) / self._resolution)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(key)
            bucket.handle = loop.call_at(key * self._resolution, self._fire, bucket)
            self._buckets[key] = bucket
        bucket.add(limit)
        return bucket

    def _leave(self, limit: Deadline, bucket: _Bucket, seconds: float) -> None:
        bucket.discard(limit)
        if bucket or self._buckets.get(bucket.key) is not bucket:
            return
        # Empty: its timer is cancelled once a limit like this one would land in a later
        # window (while it would not, the next request joins it instead of making a timer).
        loop = self._loop
        if loop is None or loop.time() + seconds > bucket.key * self._resolution:
            del self._buckets[bucket.key]
            if bucket.handle is not None:
                bucket.handle.cancel()

    def _fire(self, bucket: _Bucket) -> None:
        if self._buckets.get(bucket.key) is bucket:
            del self._buckets[bucket.key]
        for limit in list(bucket):
            limit._expire()
        bucket.clear()


class _Bucket(set["Deadline"]):
    """The limits sharing one timer."""

    __slots__ = ("handle", "key")

    def __init__(self, key: int) -> None:
        super().__init__()
        self.key = key
        self.handle: asyncio.TimerHandle | None = None


class Deadline:
    """One use of :meth:`Deadlines.limit` (a synchronous context manager, entered once)."""

    __slots__ = ("_bucket", "_cancelling", "_owner", "_seconds", "_task", "expired")

    def __init__(self, owner: Deadlines, seconds: float) -> None:
        self._owner = owner
        self._seconds = seconds
        self._bucket: _Bucket | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self.expired = False

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Deadline is used inside a task")
        if self._task is not None:
            raise RuntimeError("a Deadline is entered once")
        self._task = task
        self._cancelling = task.cancelling()
        self._bucket = self._owner._join(self, task.get_loop(), self._seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.expired:
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
        elif self._bucket is not None:
            self._owner._leave(self, self._bucket, self._seconds)
        self._bucket = None

    def _expire(self) -> None:
        if self._bucket is None or self._task is None:
            return
        self.expired = True
        self._bucket = None
        self._task.cancel()


class TenantTransports:
    """One transport (so one connection pool) per tenant: a connection that carried one
    tenant's request never carries another's, so a response can only reach the tenant that
    asked.

    At most ``max_tenants`` are kept; the least recently used idle ones are closed beyond that.
    """

    def __init__(
        self, policy: EgressPolicy, *, max_tenants: int = 64, max_connections: int = 20
    ) -> None:
        self.policy = policy
        self.max_tenants = max_tenants
        self.max_connections = max_connections
        self._ssl = default_ssl_context()  # built once: it costs ~50 ms
        self._pools: OrderedDict[str, Transport] = OrderedDict()
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def transport(self, tenant: str) -> AsyncIterator[Transport]:
        pool = self._pools.get(tenant)
        if pool is None:
            pool = make_engine_transport(
                self.policy, max_connections=self.max_connections, ssl_context=self._ssl
            )
            self._pools[tenant] = pool
        self._pools.move_to_end(tenant)
        self._users[tenant] = self._users.get(tenant, 0) + 1
        try:
            yield pool
        finally:
            self._users[tenant] -= 1
            if not self._users[tenant]:
                del self._users[tenant]
            await self._evict()

    async def _evict(self) -> None:
        idle = [t for t in self._pools if t not in self._users]
        excess = len(self._pools) - self.max_tenants
        closing = [self._pools.pop(t) for t in idle[: max(excess, 0)]]
        if closing:
            await asyncio.gather(*(c.aclose() for c in closing), return_exceptions=True)

    async def aclose(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        await asyncio.gather(*(c.aclose() for c in pools), return_exceptions=True)
