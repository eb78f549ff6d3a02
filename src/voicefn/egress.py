"""Outbound (egress) policy for customer-configured HTTP requests.

Customer functions make HTTP requests to URLs that are partly attacker-influenced, so every
request is checked twice:

* :meth:`EgressPolicy.check_url` runs on every request the transport sends (so on every
  redirect hop): scheme, host presence, and -- when the host is an IP literal in any spelling
  (``2130706433``, ``0x7f000001``, ``127.1``, ``[::ffff:127.0.0.1]`` ...) -- the address itself.
* :class:`EgressNetworkBackend` resolves hostnames itself when a new connection is opened,
  calls :meth:`EgressPolicy.check_address` on every candidate address, and connects to the
  checked IP address (never to the hostname again, so there is no DNS-rebinding window). TLS is
  still verified against the original hostname, because httpcore passes the origin host to
  ``start_tls`` as ``server_hostname``.

Use it as::

    client = httpx.AsyncClient(transport=make_transport(policy), follow_redirects=True)

:class:`EgressDenied` propagates unchanged through httpx (it is not an ``httpx.HTTPError``), so
``await client.get(url)`` raises ``EgressDenied`` itself; catch it separately from
``httpx.HTTPError``.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import anyio
import httpcore
import httpx

from .addresses import (
    LOOPBACK_NETS,
    IPAddress,
    IPNetwork,
    classify_address,
    host_ip,
    is_localhost_name,
    looks_numeric,
    normalize_hostname,
)
from .redaction import redact_url

__all__ = [
    "EgressDenied",
    "EgressNetworkBackend",
    "EgressPolicy",
    "EgressTransport",
    "classify_address",
    "make_transport",
]


_DEFAULT_REFUSAL = (
    "requests to loopback, private, link-local, metadata, multicast and reserved addresses "
    "are refused by default. Allow it with --allow-private-network or an allow-list entry."
)


class EgressDenied(Exception):
    """An outbound request was refused by the :class:`EgressPolicy`.

    ``str(exc)`` is :attr:`reason`, a short human sentence saying why. ``url`` is filled in by
    the transport when the refusal happened during a request; ``host`` is the URL host and
    ``address`` the refused IP address, when known.
    """

    def __init__(
        self,
        reason: str,
        *,
        url: httpx.URL | None = None,
        host: str | None = None,
        address: IPAddress | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.url = url
        self.host = host
        self.address = address

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_denied, (self.reason, self.url, self.host, self.address))


def _rebuild_denied(
    reason: str, url: httpx.URL | None, host: str | None, address: IPAddress | None
) -> EgressDenied:
    return EgressDenied(reason, url=url, host=host, address=address)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


# ----------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class EgressPolicy:
    """Which outbound destinations customer-configured requests may reach.

    By default only globally routable addresses are reachable. ``allow`` entries are hostnames
    (``"api.internal"``; ``"*.corp.example"`` matches subdomains only, at any depth) matched
    case-insensitively against the URL host -- a matching hostname may resolve to any address --
    or IPs/CIDRs (``"10.0.0.0/8"``, ``"::1"``) matched against the address actually connected
    to. ``allow_private_network`` allows every address (local development); ``https_only`` is
    honoured regardless.
    """

    allow_private_network: bool = False
    allow: tuple[str, ...] = ()
    https_only: bool = False
    _networks: tuple[IPNetwork, ...] = field(default=(), init=False, repr=False, compare=False)
    _hosts: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.allow, str):
            raise ValueError(
                f"allow must be a sequence of entries, not the single string {self.allow!r}"
            )
        allow = tuple(self.allow)
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        suffixes: list[str] = []
        for entry in allow:
            parsed = _parse_allow_entry(entry)
            if isinstance(parsed, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                networks.append(parsed)
            elif parsed.startswith("*."):
                suffixes.append(parsed[1:])  # keep the leading dot: subdomains only
            else:
                hosts.add(parsed)
        object.__setattr__(self, "allow", allow)
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_hosts", frozenset(hosts))
        object.__setattr__(self, "_suffixes", tuple(suffixes))

    @classmethod
    def from_strings(
        cls,
        allow: Iterable[str] = (),
        *,
        allow_private_network: bool = False,
        https_only: bool = False,
    ) -> EgressPolicy:
        """Build a policy from user-supplied strings (CLI flags, config files).

        Entries are stripped of surrounding whitespace and validated; a bad entry raises
        ``ValueError`` naming it.
        """
        if isinstance(allow, str):
            raise ValueError(
                f"allow must be an iterable of entries, not the single string {allow!r}"
            )
        entries = tuple(entry.strip() for entry in allow)
        return cls(
            allow_private_network=allow_private_network, allow=entries, https_only=https_only
        )

    # -- checks ------------------------------------------------------------------------

    def check_url(self, url: httpx.URL | str) -> None:
        """Refuse a URL whose scheme or host is not allowed. Raises :class:`EgressDenied`.

        Hostnames are not resolved here (see :class:`EgressNetworkBackend`), except that
        ``localhost`` / ``*.localhost`` are treated as loopback.
        """
        if isinstance(url, str):
            text = url
            try:
                url = httpx.URL(text)
            except httpx.InvalidURL as exc:
                shown = redact_url(text)[:300]
                raise EgressDenied(f"{shown!r} is not a valid URL ({exc}).") from None
        scheme = url.scheme.lower()
        if scheme not in ("http", "https"):
            raise EgressDenied(
                f"The URL scheme {scheme!r} is not allowed; only http and https URLs can be "
                "requested.",
                url=url,
            )
        if self.https_only and scheme != "https":
            raise EgressDenied(
                "Plain http is refused because only https is allowed; use an https:// URL.",
                url=url,
            )
        raw_host = url.raw_host.decode("ascii")
        if not raw_host:
            raise EgressDenied("The URL has no host.", url=url)
        if self.allow_private_network:
            return
        try:
            ip = host_ip(raw_host)
        except ValueError as exc:
            raise EgressDenied(f"The URL host is invalid: {exc}.", url=url, host=raw_host) from None
        if ip is not None:
            self._check(raw_host, ip, url=url)
            return
        host = raw_host.lower().rstrip(".")
        if (
            is_localhost_name(host)
            and not self._host_allowed(host)
            and not any(n.overlaps(loop) for n in self._networks for loop in LOOPBACK_NETS)
        ):
            raise EgressDenied(
                f"{host} is a loopback name (it always resolves to a loopback address); "
                + _DEFAULT_REFUSAL,
                url=url,
                host=raw_host,
            )

    def check_address(self, host: str, ip: IPAddress) -> None:
        """Refuse connecting to ``ip`` (which ``host`` resolved to) unless allowed.

        Raises :class:`EgressDenied`.
        """
        self._check(host, ip, url=None)

    def is_allowed_address(self, host: str, ip: IPAddress) -> bool:
        """Non-raising form of :meth:`check_address`."""
        try:
            self._check(host, ip, url=None)
        except EgressDenied:
            return False
        return True

    def _check(self, host: str, ip: IPAddress, *, url: httpx.URL | None) -> None:
        if self.allow_private_network:
            return
        label = classify_address(ip)
        if label is None:
            return
        if self._host_allowed(host) or self._ip_allowed(ip):
            return
        bare = host.strip("[]")
        literal = _safe_host_ip(bare)
        if literal is not None and literal == ip and bare == str(ip):
            subject = f"{ip} is {_article(label)} {label} address"
        elif literal is not None:
            subject = f"{bare} is {ip}, {_article(label)} {label} address"
        else:
            subject = f"{bare} resolves to {ip}, {_article(label)} {label} address"
        raise EgressDenied(f"{subject}; {_DEFAULT_REFUSAL}", url=url, host=host, address=ip)

    def _host_allowed(self, host: str) -> bool:
        if not (self._hosts or self._suffixes):
            return False
        try:
            name = normalize_hostname(host.strip("[]"))
        except ValueError:
            return False
        return name in self._hosts or name.endswith(self._suffixes)

    def _ip_allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)  # ::ffff:a.b.c.d reaches a.b.c.d
        return any(c in net for c in candidates for net in self._networks)


def _safe_host_ip(host: str) -> IPAddress | None:
    try:
        return host_ip(host)
    except ValueError:
        return None


def _parse_allow_entry(entry: str) -> IPNetwork | str:
    """Validate one allow-list entry: an IP/CIDR network, a hostname or ``*.`` wildcard."""

    def bad(why: str) -> ValueError:
        return ValueError(f"invalid egress allow-list entry {entry!r}: {why}")

    if not isinstance(entry, str):
        raise bad("entries must be strings")
    text = entry.strip()
    if not text:
        raise bad("the entry is empty")
    if "://" in text:
        raise bad("give a hostname or CIDR, not a URL")
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if ":" in candidate or "/" in candidate:
        try:
            return ipaddress.ip_network(candidate, strict=True)
        except ValueError as exc:
            raise bad(f"not a valid IP address or CIDR network ({exc})") from None
    if looks_numeric(candidate):
        try:
            return ipaddress.ip_network(candidate, strict=True)
        except ValueError:
            raise bad(
                "numeric hosts must be written as a canonical dotted-quad IPv4 address "
                "such as 127.0.0.1"
            ) from None
    wildcard = candidate.startswith("*.")
    name = candidate[2:] if wildcard else candidate
    if "*" in name:
        raise bad("a wildcard is only allowed as a leading '*.' (e.g. '*.corp.example')")
    try:
        name = normalize_hostname(name)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if looks_numeric(name):
        raise bad("the last label of a hostname cannot be numeric")
    return f"*.{name}" if wildcard else name


# ---------------------------------------------------------------------------- transport

SocketOption: TypeAlias = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class EgressNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that resolves, checks and connects to checked IPs only.

    For each new connection: resolve the host (IP literals in any spelling are not resolved),
    call ``policy.check_address`` on every candidate address, and connect to the allowed
    addresses in resolver order until one succeeds. If every address is refused, the first
    :class:`EgressDenied` is raised; if every allowed address fails to connect, the last
    connect error is raised. The connect timeout covers resolution and all attempts.
    """

    def __init__(
        self, policy: EgressPolicy, backend: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._backend = backend if backend is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else anyio.current_time() + timeout
        addresses = await self._resolve(host, port, deadline)
        allowed: list[IPAddress] = []
        first_denial: EgressDenied | None = None
        for ip in addresses:
            try:
                self._policy.check_address(host, ip)
            except EgressDenied as exc:
                first_denial = first_denial or exc
            else:
                allowed.append(ip)
        if not allowed:
            if first_denial is not None:
                raise first_denial
            raise httpcore.ConnectError(f"{host} did not resolve to any address")
        options = list(socket_options) if socket_options is not None else None
        last_error: Exception | None = None
        for ip in allowed:
            remaining = None if deadline is None else max(deadline - anyio.current_time(), 0.0)
            try:
                return await self._backend.connect_tcp(
                    str(ip),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _resolve(self, host: str, port: int, deadline: float | None) -> list[IPAddress]:
        try:
            literal = host_ip(host)
        except ValueError as exc:
            raise EgressDenied(f"The URL host is invalid: {exc}.", host=host) from None
        if literal is not None:
            return [literal]
        try:
            with anyio.fail_after(None if deadline is None else deadline - anyio.current_time()):
                infos = await anyio.getaddrinfo(
                    host.encode("ascii"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out resolving {host}") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        addresses: list[IPAddress] = []
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            if ip not in addresses:
                addresses.append(ip)
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("Unix domain sockets are not allowed by the egress policy.")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class EgressTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose pool connects through :class:`EgressNetworkBackend`.

    Every request (hence every redirect hop) is checked with ``policy.check_url``; every new
    connection is checked at connect time. Pooled keep-alive connections are reused without
    re-resolving. ``proxy`` and ``uds`` are refused because they would bypass the policy.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: str | tuple[str, str] | tuple[str, str, str] | None = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[SocketOption] | None = None,
        proxy: object = None,
        uds: object = None,
    ) -> None:
        if proxy is not None:
            raise ValueError(
                "EgressTransport does not support proxies: the proxy would resolve and connect "
                "on our behalf, bypassing the egress policy"
            )
        if uds is not None:
            raise ValueError("EgressTransport does not support Unix domain sockets")
        if limits is None:
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's
        ssl_context = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        super().__init__(
            verify=ssl_context,
            http1=http1,
            http2=http2,
            limits=limits,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
        )
        self.policy = policy
        # Replace the pool httpx built with one that connects through the egress backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
            network_backend=EgressNetworkBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            self.policy.check_url(request.url)
            return await super().handle_async_request(request)
        except EgressDenied as exc:
            if exc.url is None:
                exc.url = request.url
            raise


def make_transport(policy: EgressPolicy, **transport_kwargs: Any) -> httpx.AsyncBaseTransport:
    """An httpx async transport enforcing ``policy``; kwargs go to :class:`EgressTransport`.

    Use with ``httpx.AsyncClient(transport=..., follow_redirects=True, max_redirects=5)``.
    ``EgressDenied`` raised while checking or connecting surfaces unchanged from
    ``client.get(...)`` etc., with ``.url`` set to the refused request's URL.
    """
    return EgressTransport(policy, **transport_kwargs)
