"""URL settings: absolute http(s), a valid host and port, placeholders allowed where they go."""

from __future__ import annotations

import re
from typing import Any

import httpx

from .problems import Collector, Path, Problem, identity


def check_url(url: Any, path: Path, what: str) -> list[Problem]:
    """The problems of an absolute http(s) URL setting (``what`` names it in messages)."""
    out = Collector(identity)
    if not isinstance(url, str):
        out.add(path, f"{what} must be a URL string", "write e.g. https://api.example.com/v1", url)
    else:
        checked_url(url, path, out, what)
    return out.problems


def checked_url(url: Any, path: Path, out: Collector, what: str) -> httpx.URL | None:
    if not isinstance(url, str):
        return None
    probe = re.sub(r"%\([^()]*\)[a-zA-Z]|\{[A-Za-z_][A-Za-z0-9_]*\}", "x", url)
    try:
        parsed = httpx.URL(probe)
        host = parsed.host  # decodes IDNA labels: an invalid one raises here
    except (httpx.InvalidURL, ValueError) as exc:
        out.add(
            path,
            f"{what} is not a valid URL: {exc}",
            "use an absolute URL such as https://api.example.com/orders",
            url,
        )
        return None
    if parsed.port is not None and not 0 < parsed.port <= 65535:
        out.add(
            path,
            f"{what} has the port {parsed.port}, outside 1-65535",
            "use a port from 1 to 65535, or none for the scheme's default (80/443)",
            url,
        )
        return None
    if parsed.scheme not in ("http", "https") or not host:
        out.add(
            path,
            f"{what} must be an absolute http(s) URL",
            "use an absolute URL such as https://api.example.com/orders",
            url,
        )
        return None
    if " " in url.strip():
        out.add(path, f"{what} contains a space", "percent-encode it as %20", url)
    return parsed
