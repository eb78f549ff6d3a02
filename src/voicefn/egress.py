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
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import anyio
import httpcore
import httpx
import idna

__all__ = [
    "EgressDenied",
    "EgressNetworkBackend",
    "EgressPolicy",
    "EgressTransport",
    "classify_address",
    "make_transport",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

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


# --------------------------------------------------------------------------- classification

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

_METADATA: frozenset[IPAddress] = frozenset(
    {
        ipaddress.IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean ...
        ipaddress.IPv4Address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.IPv4Address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.IPv4Address("168.63.129.16"),  # Azure WireServer / platform endpoint
        ipaddress.IPv6Address("fd00:ec2::254"),  # AWS IMDS over IPv6
    }
)

_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), "unspecified"),
    (_V4("0.0.0.0/8"), "reserved"),  # "this network"
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("192.0.0.0/24"), "reserved"),  # IETF protocol assignments
    (_V4("192.88.99.0/24"), "reserved"),  # deprecated 6to4 relay anycast
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

_V6_MAPPED = _V6("::ffff:0:0/96")
_V6_TRANSLATED = _V6("::ffff:0:0:0/96")  # SIIT, RFC 2765
_V6_COMPATIBLE = _V6("::/96")
_V6_NAT64 = _V6("64:ff9b::/96")
_V6_NAT64_LOCAL = _V6("64:ff9b:1::/48")
_V6_6TO4 = _V6("2002::/16")
_V6_TEREDO = _V6("2001::/32")
_V6_GLOBAL_UNICAST = _V6("2000::/3")

_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("fc00::/7"), "private"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("100::/64"), "discard-only"),
)


def classify_address(ip: IPAddress | str) -> str | None:
    """Return ``None`` for a globally routable address, else a label saying what it is.

    Labels include ``"loopback"``, ``"private"``, ``"link-local"``, ``"cloud metadata"``,
    ``"multicast"``, ``"reserved"``, ``"unspecified"``, ``"broadcast"``,
    ``"shared address space (CGNAT)"``, ``"documentation"``, ``"benchmarking"`` and, for IPv6
    forms embedding an IPv4 address, ``"IPv4-mapped <label>"``, ``"IPv4-translated <label>"``,
    ``"IPv4-compatible ..."``, ``"NAT64 <label>"``, ``"NAT64 (local-use prefix)"``,
    ``"6to4 <label>"`` and ``"Teredo"``. NAT64 (64:ff9b::/96), IPv4-mapped and 6to4 addresses
    that embed a global IPv4 address are global.
    """
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv4Address):
        return _classify_v4(ip)
    if ip.scope_id is not None:
        ip = ipaddress.IPv6Address(int(ip))  # drop the zone; it does not change the kind
    return _classify_v6(ip)


def _classify_v4(ip: ipaddress.IPv4Address) -> str | None:
    if ip in _METADATA:
        return "cloud metadata"
    for network, label in _V4_RULES:
        if ip in network:
            return label
    return None if ip.is_global else "reserved"


def _classify_v6(ip: ipaddress.IPv6Address) -> str | None:
    if ip == ipaddress.IPv6Address("::"):
        return "unspecified"
    if ip == ipaddress.IPv6Address("::1"):
        return "loopback"
    if ip in _METADATA:
        return "cloud metadata"
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    for network, kind in ((_V6_MAPPED, "IPv4-mapped"), (_V6_TRANSLATED, "IPv4-translated")):
        if ip in network:
            inner = _classify_v4(low32)
            return None if inner is None else f"{kind} {inner}"
    if ip in _V6_COMPATIBLE:
        # Deprecated (RFC 4291); never legitimately used, so refuse whatever it embeds.
        inner = _classify_v4(low32)
        return f"IPv4-compatible {inner}" if inner else "IPv4-compatible (deprecated)"
    if ip in _V6_NAT64:
        inner = _classify_v4(low32)
        return None if inner is None else f"NAT64 {inner}"
    if ip in _V6_NAT64_LOCAL:
        # The embedded IPv4 position depends on a site-chosen prefix length (RFC 6052/8215).
        return "NAT64 (local-use prefix)"
    if ip in _V6_6TO4:
        embedded = ip.sixtofour
        inner = _classify_v4(embedded) if embedded is not None else "reserved"
        return None if inner is None else f"6to4 {inner}"
    if ip in _V6_TEREDO:
        return "Teredo"
    for network, label in _V6_RULES:
        if ip in network:
            return label
    if ip not in _V6_GLOBAL_UNICAST:
        return "reserved"
    return None if ip.is_global and not ip.is_reserved else "reserved"


# ------------------------------------------------------------------------- host parsing

_NUMERIC_LABEL = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_LOOPBACK_NETS: tuple[IPNetwork, ...] = (_V4("127.0.0.0/8"), _V6("::1/128"))


def _parse_legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Parse an IPv4 host the way ``inet_aton`` / the WHATWG URL standard do.

    Accepts 1-4 parts, each decimal, ``0x`` hex or ``0``-prefixed octal, the last part filling
    the remaining bytes (``127.1``, ``2130706433``, ``0x7f000001``, ``017700000001``). Returns
    ``None`` when the host is not such a number.
    """
    if host.endswith("."):
        host = host[:-1]
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        if not _NUMERIC_LABEL.match(part):
            return None
        if part[:2].lower() == "0x":
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _looks_numeric(host: str) -> bool:
    """True when the last label is numeric: WHATWG says such a host must be an IPv4 address."""
    labels = host.rstrip(".").split(".")
    return bool(_NUMERIC_LABEL.match(labels[-1]))


def _host_ip(host: str) -> IPAddress | None:
    """The IP address a URL host denotes, in any spelling; ``None`` for a hostname.

    Raises ``ValueError`` for a host that is neither a valid IP literal nor a valid hostname
    candidate (e.g. ``256.1.1.1`` or a malformed IPv6 literal).
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        return ipaddress.IPv6Address(host.replace("%25", "%", 1))
    ip = _parse_legacy_ipv4(host)
    if ip is None and _looks_numeric(host):
        raise ValueError(f"{host!r} is neither a valid IP address nor a hostname")
    return ip


def _normalize_hostname(name: str) -> str:
    """Lower-case, strip one trailing dot, IDNA-encode; raise ``ValueError`` if malformed."""
    name = name.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"not a valid internationalised hostname ({exc})") from None
    if not name or len(name) > 253:
        raise ValueError("not a valid hostname")
    for label in name.split("."):
        if not _HOST_LABEL.match(label):
            raise ValueError(f"not a valid hostname (bad label {label!r})")
    return name


def _is_localhost_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


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
            try:
                url = httpx.URL(url)
            except httpx.InvalidURL as exc:
                raise EgressDenied(f"{url!r} is not a valid URL ({exc}).") from None
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
            ip = _host_ip(raw_host)
        except ValueError as exc:
            raise EgressDenied(f"The URL host is invalid: {exc}.", url=url, host=raw_host) from None
        if ip is not None:
            self._check(raw_host, ip, url=url)
            return
        host = raw_host.lower().rstrip(".")
        if (
            _is_localhost_name(host)
            and not self._host_allowed(host)
            and not any(n.overlaps(loop) for n in self._networks for loop in _LOOPBACK_NETS)
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
            name = _normalize_hostname(host.strip("[]"))
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
        return _host_ip(host)
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
    if _looks_numeric(candidate):
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
        name = _normalize_hostname(name)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if _looks_numeric(name):
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
            literal = _host_ip(host)
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
