"""Keeping secrets out of logs, results and printed requests."""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Iterable, Mapping

REDACTED = "[redacted]"
_SENSITIVE = re.compile(
    r"^(authorization|proxy-authorization|cookie|set-cookie)$|token|secret|passw|api[-_]?key|apikey|auth|signature|session",
    re.IGNORECASE,
)
_NOT_SENSITIVE = frozenset({"idempotency-key"})
#: query parameters whose values are hidden (beside names that say secret: token, api_key, ...)
_SECRET_PARAMS = frozenset({"key", "sig", "code", "pwd", "pass", "access_token"})
_USERINFO = re.compile(r"(//)[^/?#@]*@")


@functools.lru_cache(maxsize=1024)
def is_sensitive_header(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _NOT_SENSITIVE and _SENSITIVE.search(lowered) is not None


class Redactor:
    """Replaces known secret values wherever they appear."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found: set[str] = set()
        for s in secrets:
            if s and len(s) >= 4:
                found.add(s)
                # "Bearer abc": also the bare credential, which an API may echo back.
                _, _, bare = s.partition(" ")
                if len(bare) >= 4:
                    found.add(bare)
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {k: REDACTED if is_sensitive_header(k) else self.text(v) for k, v in headers.items()}


def function_secrets(token: str | None, headers: Mapping[str, str]) -> list[str]:
    """The secret values a function holds: its api_token and its sensitive header values."""
    out = [v for k, v in headers.items() if is_sensitive_header(k)]
    if token:
        out.append(token)
    return out


def redact_url(url: str) -> str:
    """``url`` safe to record and show: without ``user:password``, and with the values of
    secret-looking query parameters (``token``, ``api_key``, ``key``, ``sig``, ...) replaced by
    ``[redacted]``. A URL that cannot be parsed keeps only what comes before its query."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        head, mark, _ = _USERINFO.sub(r"\1", url).partition("?")
        return f"{head}?{REDACTED}" if mark else head
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        hidden = [
            (k, REDACTED if is_sensitive_header(k) or k.lower() in _SECRET_PARAMS else v)
            for k, v in pairs
        ]
        if hidden != pairs:
            query = urllib.parse.urlencode(hidden, safe="[]")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
