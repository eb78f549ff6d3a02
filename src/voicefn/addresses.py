"""What an address or a URL host is: the class of an IP address (loopback, private, cloud
metadata, an IPv6 form embedding an IPv4 one, ...) and the IP a host denotes in any spelling
(``2130706433``, ``0x7f000001``, ``127.1``, ``[::ffff:127.0.0.1]``), or its normalized name.
The egress policy (:mod:`voicefn.egress`) decides with these."""

from __future__ import annotations

import ipaddress
import re
from typing import TypeAlias

import idna

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

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
LOOPBACK_NETS: tuple[IPNetwork, ...] = (_V4("127.0.0.0/8"), _V6("::1/128"))


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


def looks_numeric(host: str) -> bool:
    """True when the last label is numeric: WHATWG says such a host must be an IPv4 address."""
    labels = host.rstrip(".").split(".")
    return bool(_NUMERIC_LABEL.match(labels[-1]))


def host_ip(host: str) -> IPAddress | None:
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
    if ip is None and looks_numeric(host):
        raise ValueError(f"{host!r} is neither a valid IP address nor a hostname")
    return ip


def normalize_hostname(name: str) -> str:
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


def is_localhost_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")
