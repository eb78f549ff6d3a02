"""Tests for voicefn.egress: address classification, URL checks and a real loopback transport."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import pickle
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicefn.egress import (
    EgressDenied,
    EgressNetworkBackend,
    EgressPolicy,
    EgressTransport,
    classify_address,
    make_transport,
)

TIMEOUT = httpx.Timeout(5.0)


# ------------------------------------------------------------------ loopback test server


class Server:
    """Tiny keep-alive HTTP/1.1 server counting accepted connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []
        self.location: str | None = None
        self.port = 0
        self.host = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", ssl_ctx: ssl.SSLContext | None = None) -> Server:
        self._server = await asyncio.start_server(self._handle, host, 0, ssl=ssl_ctx)
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, host: str | None = None, scheme: str = "http") -> str:
        host = host or self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}/"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head.split(b"\r\n", 1)[0].decode())
                if self.location is not None:
                    writer.write(
                        b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\nLocation: "
                        + self.location.encode()
                        + b"\r\n\r\n"
                    )
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., object]]:
    servers: list[Server] = []

    async def factory(host: str = "127.0.0.1", ssl_ctx: ssl.SSLContext | None = None) -> Server:
        server = await Server().start(host, ssl_ctx)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.close()


@pytest.fixture
async def server(make_server) -> Server:
    return await make_server()


def client_for(policy: EgressPolicy, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=make_transport(policy, **kwargs),
        follow_redirects=True,
        max_redirects=5,
        timeout=TIMEOUT,
    )


# ---------------------------------------------------------------------- classification

CLASSIFY_TABLE = [
    # IPv4
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.1.1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("100.127.255.255", "shared address space (CGNAT)"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "reserved"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    # IPv6
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local (deprecated)"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "discard-only"),
    ("4000::1", "reserved"),
    ("5f00::1", "reserved"),
    # IPv6 forms embedding IPv4
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:7f00:1", "IPv4-mapped loopback"),
    ("0:0:0:0:0:ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped cloud metadata"),
    ("::ffff:0:127.0.0.1", "IPv4-translated loopback"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::8.8.8.8", "IPv4-compatible (deprecated)"),
    ("64:ff9b::127.0.0.1", "NAT64 loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 cloud metadata"),
    ("64:ff9b:1::8.8.8.8", "NAT64 (local-use prefix)"),
    ("2002:7f00:1::1", "6to4 loopback"),
    ("2002:c0a8:101::1", "6to4 private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    # Global: None
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("93.184.216.34", None),
    ("2606:4700:4700::1111", None),
    ("2a00:1450:4001:80b::200e", None),
    ("::ffff:8.8.8.8", None),
    ("64:ff9b::8.8.8.8", None),
    ("2002:808:808::1", None),
]


@pytest.mark.parametrize(("address", "label"), CLASSIFY_TABLE)
def test_classify_address(address: str, label: str | None) -> None:
    assert classify_address(ipaddress.ip_address(address)) == label
    assert classify_address(address) == label  # strings are accepted too


@pytest.mark.parametrize(("address", "label"), CLASSIFY_TABLE)
def test_check_address_agrees_with_classification(address: str, label: str | None) -> None:
    ip = ipaddress.ip_address(address)
    policy = EgressPolicy()
    if label is None:
        policy.check_address("example.com", ip)
        assert policy.is_allowed_address("example.com", ip)
    else:
        with pytest.raises(EgressDenied) as info:
            policy.check_address("example.com", ip)
        assert info.value.address == ip
        assert info.value.host == "example.com"
        assert label in info.value.reason
    EgressPolicy(allow_private_network=True).check_address("example.com", ip)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_numeric_ipv4_spellings_are_checked_like_the_address(value: int) -> None:
    ip = ipaddress.IPv4Address(value)
    expected_denied = classify_address(ip) is not None
    a, b, c, d = ip.packed
    spellings = [str(value), hex(value), f"0{value:o}", f"{a}.{(b << 16) | (c << 8) | d}"]
    spellings.append(f"{a}.{b}.{(c << 8) | d}")
    spellings.append(f"0x{a:x}.0{b:o}.{c}.{d}")
    for spelling in spellings:
        url = f"http://{spelling}/"
        if expected_denied:
            with pytest.raises(EgressDenied) as info:
                EgressPolicy().check_url(url)
            assert info.value.address == ip, url
        else:
            EgressPolicy().check_url(url)


# ---------------------------------------------------------------------------- check_url

LOOPBACK_SPELLINGS = [
    ("http://127.0.0.1/", "127.0.0.1"),
    ("http://2130706433/", "127.0.0.1"),
    ("http://0x7f000001/", "127.0.0.1"),
    ("http://0X7F000001/", "127.0.0.1"),
    ("http://017700000001/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://127.0.1/", "127.0.0.1"),
    ("http://0x7f.1/", "127.0.0.1"),
    ("http://0177.0.1/", "127.0.0.1"),
    ("http://127.0.0.1./", "127.0.0.1"),
    ("http://0/", "0.0.0.0"),
    ("http://0.0.0.0:8080/", "0.0.0.0"),
    ("http://[::1]/", "::1"),
    ("http://[0:0:0:0:0:0:0:1]/", "::1"),
    ("http://[::]/", "::"),
    ("http://[::ffff:7f00:1]/", "::ffff:7f00:1"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "::ffff:7f00:1"),
    ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
    ("http://100.100.100.200/", "100.100.100.200"),
    ("http://10.0.0.1/", "10.0.0.1"),
    ("http://user:pw@192.168.0.1:8443/x?y=1", "192.168.0.1"),
]


@pytest.mark.parametrize(("url", "address"), LOOPBACK_SPELLINGS)
def test_check_url_refuses_internal_literals_in_any_spelling(url: str, address: str) -> None:
    with pytest.raises(EgressDenied) as info:
        EgressPolicy().check_url(url)
    exc = info.value
    assert exc.address == ipaddress.ip_address(address)
    assert str(exc) == exc.reason
    assert "refused by default" in exc.reason
    assert "--allow-private-network" in exc.reason
    assert exc.url == httpx.URL(url)


def test_denial_reason_is_a_readable_sentence() -> None:
    with pytest.raises(EgressDenied) as info:
        EgressPolicy().check_url("http://127.0.0.1:8080/admin")
    assert info.value.reason == (
        "127.0.0.1 is a loopback address; requests to loopback, private, link-local, metadata, "
        "multicast and reserved addresses are refused by default. Allow it with "
        "--allow-private-network or an allow-list entry."
    )
    with pytest.raises(EgressDenied) as info:
        EgressPolicy().check_address("db.internal", ipaddress.ip_address("10.1.2.3"))
    assert info.value.reason.startswith("db.internal resolves to 10.1.2.3, a private address;")


@pytest.mark.parametrize(
    "url", ["http://localhost/", "http://LOCALHOST./", "http://api.localhost:9000/x"]
)
def test_check_url_refuses_localhost_names(url: str) -> None:
    with pytest.raises(EgressDenied) as info:
        EgressPolicy().check_url(url)
    assert "loopback name" in info.value.reason
    assert info.value.address is None


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/v1/hook",
        "http://8.8.8.8/",
        "http://134744072/",  # 8.8.8.8
        "http://[2606:4700:4700::1111]:8443/",
        "http://[64:ff9b::808:808]/",
        "HTTPS://Example.COM./",
        "https://bücher.example/",
    ],
)
def test_check_url_allows_public_destinations(url: str) -> None:
    assert EgressPolicy().check_url(url) is None
    assert EgressPolicy(https_only=True).check_url(url.replace("http://", "https://")) is None


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/file", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://example.com/", "scheme 'gopher'"),
        ("http:///path-only", "no host"),
        ("http://[::1/", "not a valid URL"),
        ("http://0177.0.0.1/", "not a valid URL"),  # httpx itself rejects this spelling
        ("http://1.2.3.4.5/", "neither a valid IP address nor a hostname"),
        ("http://0x1.09/", "neither a valid IP address nor a hostname"),
        ("http://4294967296/", "neither a valid IP address nor a hostname"),
    ],
)
def test_check_url_refuses_bad_urls(url: str, fragment: str) -> None:
    with pytest.raises(EgressDenied) as info:
        EgressPolicy(allow=("0.0.0.0/0", "::/0")).check_url(url)
    assert fragment in info.value.reason


def test_https_only_refuses_http_even_when_private_network_allowed() -> None:
    for policy in (
        EgressPolicy(https_only=True),
        EgressPolicy(https_only=True, allow_private_network=True),
    ):
        with pytest.raises(EgressDenied) as info:
            policy.check_url("http://example.com/")
        assert "only https" in info.value.reason
        policy.check_url("https://example.com/")
    EgressPolicy(https_only=True, allow_private_network=True).check_url("https://127.0.0.1/")


def test_allow_private_network_allows_every_address() -> None:
    policy = EgressPolicy(allow_private_network=True)
    for url, _ in LOOPBACK_SPELLINGS:
        policy.check_url(url)
    policy.check_url("http://localhost/")


def test_cidr_entries_match_the_address_in_any_spelling() -> None:
    policy = EgressPolicy.from_strings(["127.0.0.1/32", "10.0.0.0/8"])
    for url in ("http://127.0.0.1/", "http://2130706433/", "http://127.1/", "http://10.9.8.7/"):
        policy.check_url(url)
    policy.check_url("http://[::ffff:127.0.0.1]/")  # mapped form reaches the allowed address
    for url in ("http://127.0.0.2/", "http://[::1]/", "http://192.168.1.1/", "http://0/"):
        with pytest.raises(EgressDenied):
            policy.check_url(url)
    # localhost is deferred to connect time when a CIDR entry covers loopback ...
    policy.check_url("http://localhost/")
    # ... and refused up front when none does.
    with pytest.raises(EgressDenied):
        EgressPolicy(allow=("10.0.0.0/8",)).check_url("http://localhost/")


def test_ipv6_cidr_entries() -> None:
    policy = EgressPolicy(allow=("::1", "fd00::/8"))
    policy.check_url("http://[::1]/")
    policy.check_address("x", ipaddress.ip_address("fd12::5"))
    with pytest.raises(EgressDenied):
        policy.check_url("http://127.0.0.1/")
    with pytest.raises(EgressDenied):
        policy.check_address("x", ipaddress.ip_address("fe80::1"))


def test_hostname_entries() -> None:
    policy = EgressPolicy.from_strings(["api.internal", "*.corp.example", " LocalHost. "])
    private = ipaddress.ip_address("10.0.0.5")
    for host in ("api.internal", "API.Internal.", "a.corp.example", "x.y.CORP.example."):
        policy.check_address(host, private)
        policy.check_url(f"http://{host}/")
    policy.check_url("http://localhost:8000/")
    policy.check_address("localhost", ipaddress.ip_address("::1"))
    for host in ("corp.example", "evilcorp.example", "api.internal.evil.com", "internal"):
        with pytest.raises(EgressDenied) as info:
            policy.check_address(host, private)
        assert info.value.reason.startswith(f"{host} resolves to 10.0.0.5")
    # Hostname entries never match IP-literal hosts.
    with pytest.raises(EgressDenied):
        policy.check_url("http://10.0.0.5/")


def test_idn_hostname_entries_match_punycode_hosts() -> None:
    policy = EgressPolicy.from_strings(["bücher.internal"])
    assert policy.is_allowed_address("xn--bcher-kva.internal", ipaddress.ip_address("10.0.0.1"))
    assert policy.is_allowed_address("BÜCHER.internal", ipaddress.ip_address("10.0.0.1"))


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("https://api.internal", "not a URL"),
        ("10.0.0.1/8", "host bits set"),
        ("10.0.0.0/33", "not a valid IP address or CIDR"),
        ("::1::2", "not a valid IP address or CIDR"),
        ("127.1", "canonical dotted-quad"),
        ("2130706433", "canonical dotted-quad"),
        ("0x7f000001", "canonical dotted-quad"),
        ("*", "wildcard"),
        ("api.*.com", "wildcard"),
        ("*.*.com", "wildcard"),
        ("bad host", "bad label"),
        ("-x.example", "bad label"),
        ("a..b", "bad label"),
        ("api.internal:8080", "not a valid IP address or CIDR"),
    ],
)
def test_from_strings_rejects_bad_entries_naming_them(entry: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="invalid egress allow-list entry") as info:
        EgressPolicy.from_strings(["ok.example", entry])
    assert repr(entry.strip()) in str(info.value) or repr(entry) in str(info.value)
    assert fragment in str(info.value)


def test_from_strings_builds_equal_frozen_policies() -> None:
    policy = EgressPolicy.from_strings([" 10.0.0.0/8 ", "[::1]", "api.internal"], https_only=True)
    assert policy.allow == ("10.0.0.0/8", "[::1]", "api.internal")
    assert policy.https_only is True
    assert policy.allow_private_network is False
    assert policy == EgressPolicy(allow=("10.0.0.0/8", "[::1]", "api.internal"), https_only=True)
    assert hash(policy) == hash(
        EgressPolicy(allow=("10.0.0.0/8", "[::1]", "api.internal"), https_only=True)
    )
    policy.check_url("https://[::1]/")
    with pytest.raises(AttributeError):
        policy.https_only = False  # type: ignore[misc]
    with pytest.raises(ValueError, match="single string"):
        EgressPolicy.from_strings("10.0.0.0/8")
    with pytest.raises(ValueError, match="invalid egress allow-list entry"):
        EgressPolicy(allow=("nope nope",))


def test_egress_denied_pickles() -> None:
    exc = EgressDenied(
        "why", url=httpx.URL("http://x/"), host="x", address=ipaddress.ip_address("::1")
    )
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.reason, copy.url, copy.host, copy.address) == ("why", exc.url, "x", exc.address)


def test_make_transport_refuses_bypasses() -> None:
    with pytest.raises(ValueError, match="proxies"):
        make_transport(EgressPolicy(), proxy="http://proxy.example:3128")
    with pytest.raises(ValueError, match="Unix"):
        make_transport(EgressPolicy(), uds="/tmp/sock")
    assert isinstance(make_transport(EgressPolicy()), EgressTransport)


# ------------------------------------------------------------- real loopback transport


async def test_loopback_refused_by_default_and_never_connected(server: Server) -> None:
    async with client_for(EgressPolicy()) as client:
        for url in (server.url(), server.url("2130706433"), server.url("127.1")):
            with pytest.raises(EgressDenied) as info:
                await client.get(url)
            assert info.value.url == httpx.URL(url)
            assert info.value.address == ipaddress.ip_address("127.0.0.1")
    assert server.connections == 0
    assert server.requests == []


@pytest.mark.parametrize(
    ("allow", "host"),
    [
        pytest.param((), None, id="allow_private_network"),
        pytest.param(("127.0.0.1/32",), "127.0.0.1", id="cidr"),
        pytest.param(("127.0.0.1/32",), "127.1", id="cidr-short-spelling"),
        pytest.param(("127.0.0.1/32",), "localhost", id="cidr-localhost-at-connect"),
        pytest.param(("localhost",), "localhost", id="hostname"),
    ],
)
async def test_loopback_allowed(server: Server, allow: tuple[str, ...], host: str | None) -> None:
    policy = EgressPolicy(allow=allow, allow_private_network=not allow)
    async with client_for(policy) as client:
        response = await client.get(server.url(host))
    assert response.status_code == 200
    assert response.text == "ok"
    assert server.connections == 1
    assert server.requests == ["GET / HTTP/1.1"]


async def test_localhost_refused_at_connect_time_when_its_addresses_are_not_allowed(
    server: Server,
) -> None:
    # The CIDR entry covers loopback, so check_url defers to the connect-time check, which
    # resolves localhost (127.0.0.1 / ::1) and refuses both addresses.
    policy = EgressPolicy(allow=("127.0.0.2/32",))
    policy.check_url(server.url("localhost"))
    async with client_for(policy) as client:
        with pytest.raises(EgressDenied) as info:
            await client.get(server.url("localhost"))
    assert info.value.reason.startswith("localhost resolves to ")
    assert info.value.address is not None
    assert info.value.address.is_loopback
    assert info.value.url == httpx.URL(server.url("localhost"))
    assert server.connections == 0


async def test_backend_resolves_numeric_spellings_and_connects_to_checked_ip(
    server: Server,
) -> None:
    refused = EgressNetworkBackend(EgressPolicy())
    for host in ("127.1", "2130706433", "0x7f000001", "017700000001", "127.0.0.1"):
        with pytest.raises(EgressDenied) as info:
            await refused.connect_tcp(host, server.port, timeout=5)
        assert info.value.address == ipaddress.ip_address("127.0.0.1")
    assert server.connections == 0

    allowed = EgressNetworkBackend(EgressPolicy(allow=("127.0.0.1",)))
    stream = await allowed.connect_tcp("0x7f.1", server.port, timeout=5)
    try:
        await stream.write(b"GET /probe HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        assert b"200 OK" in await stream.read(1024, timeout=5)
        assert stream.get_extra_info("server_addr")[0] == "127.0.0.1"
    finally:
        await stream.aclose()
    assert server.requests == ["GET /probe HTTP/1.1"]


async def test_redirect_to_refused_address_is_stopped_at_the_hop(make_server) -> None:
    first = await make_server()
    second = await make_server()
    first.location = second.url("127.0.0.1") + "secret"
    async with client_for(EgressPolicy(allow=("localhost",))) as client:
        with pytest.raises(EgressDenied) as info:
            await client.get(first.url("localhost"))
    assert info.value.url == httpx.URL(second.url("127.0.0.1") + "secret")
    assert info.value.address == ipaddress.ip_address("127.0.0.1")
    assert first.requests == ["GET / HTTP/1.1"]
    assert second.connections == 0


async def test_redirect_to_allowed_address_is_followed(make_server) -> None:
    first = await make_server()
    second = await make_server()
    first.location = second.url("127.0.0.1") + "next"
    async with client_for(EgressPolicy(allow=("localhost", "127.0.0.1"))) as client:
        response = await client.get(first.url("localhost"))
    assert response.status_code == 200
    assert [str(r.url) for r in response.history] == [first.url("localhost")]
    assert second.requests == ["GET /next HTTP/1.1"]


async def test_redirect_to_numeric_spelling_is_refused(make_server) -> None:
    first = await make_server()
    first.location = f"http://0x7f000001:{first.port}/again"
    async with client_for(EgressPolicy(allow=("localhost",))) as client:
        with pytest.raises(EgressDenied):
            await client.get(first.url("localhost"))
    assert first.requests == ["GET / HTTP/1.1"]
    assert first.connections == 1


async def test_https_only_refuses_http_through_the_client(server: Server) -> None:
    policy = EgressPolicy(https_only=True, allow_private_network=True)
    async with client_for(policy) as client:
        with pytest.raises(EgressDenied) as info:
            await client.get(server.url())
    assert "only https" in info.value.reason
    assert server.connections == 0


async def test_keep_alive_connection_is_reused(server: Server) -> None:
    async with client_for(EgressPolicy(allow=("localhost",))) as client:
        first = await client.get(server.url("localhost") + "one")
        second = await client.get(server.url("localhost") + "two")
    assert (first.status_code, second.status_code) == (200, 200)
    assert server.requests == ["GET /one HTTP/1.1", "GET /two HTTP/1.1"]
    assert server.connections == 1


async def test_ipv6_loopback_server(make_server) -> None:
    try:
        server = await make_server("::1")
    except OSError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    async with client_for(EgressPolicy()) as client:
        for url in (server.url(), server.url("0:0:0:0:0:0:0:1")):
            with pytest.raises(EgressDenied) as info:
                await client.get(url)
            assert info.value.address == ipaddress.ip_address("::1")
    assert server.connections == 0
    for policy in (EgressPolicy(allow=("::1",)), EgressPolicy(allow_private_network=True)):
        async with client_for(policy) as client:
            response = await client.get(server.url())
        assert response.status_code == 200
    assert server.connections == 2


# ------------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def localhost_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


async def test_tls_verifies_against_the_hostname_not_the_ip(
    make_server, localhost_cert: tuple[Path, Path]
) -> None:
    cert, key = localhost_cert
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server = await make_server(ssl_ctx=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    policy = EgressPolicy(allow=("localhost", "127.0.0.1"))

    # The backend connects to the resolved IP, yet verification uses "localhost".
    async with client_for(policy, verify=client_ctx) as client:
        response = await client.get(server.url("localhost", scheme="https"))
    assert response.status_code == 200
    assert response.text == "ok"

    # Control: the certificate does not cover 127.0.0.1, so verification is really on.
    async with client_for(policy, verify=client_ctx) as client:
        with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|mismatch"):
            await client.get(server.url("127.0.0.1", scheme="https"))
    assert server.requests == ["GET / HTTP/1.1"]
