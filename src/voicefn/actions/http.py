"""The HTTP action: render the request from the function's template and send it.

Every failure becomes a result the LLM can act on; the call goes on. The shape follows seed 004:
``{"error": "request_failed", "status": 503, "detail": "Endpoint returned 503"}``, plus a
``reason`` (status, timeout, connection, tls, blocked, invalid_json, too_large, redirects,
encoding, invalid_url).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import json.encoder
import logging
import re
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import httpx
import orjson

from .._cache import PerObjectCache
from ..decoding import ACCEPT_ENCODING
from ..egress import EgressDenied
from ..outbound import Deadlines, FetchFailed, HopFailed, Request, fetch
from ..redaction import Redactor, function_secrets
from ..results import RequestRecord, ToolResult, bounded, error_content
from ..spec import Function
from ..templates import (
    OMIT,
    Specifier,
    Template,
    TemplateError,
    Variable,
    format_specifier,
    parse_string,
)
from ..transport import Transport
from .base import Invocation

log = logging.getLogger("voicefn.http")


def _builtin_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 (the same digest), without OpenSSL 3's setup on every call."""
    for module in ("_sha2", "_sha256"):  # 3.12+, 3.11
        try:
            return importlib.import_module(module).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256  # pragma: no cover - a build without the builtin hashes


_sha256 = _builtin_sha256()

QUERY_METHODS = frozenset({"GET", "DELETE"})
_BAD_VALUE = re.compile(r"[\r\n\x00]")
FORM_TYPE = "application/x-www-form-urlencoded"
MULTIPART_TYPE = "multipart/form-data"
USER_AGENT = "voicefn/0.1"
#: The headers set per call (exact names: a configured one replaces its value in place).
_DYNAMIC_HEADERS = frozenset(
    {"X-Voicefn-Call-Id", "X-Voicefn-Agent-Id", "Idempotency-Key", "Content-Type"}
)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about a function's request that does not depend on the call: built once."""

    name: str
    method: str
    query: bool  # the arguments go in the query string (GET, DELETE), not in a body
    url_parts: list[str | Specifier | Variable]
    url: str | None  # parsed and encoded once when the URL has no placeholders
    record_url: str | None  # the same, redacted, for the RequestRecord
    param: Template | None
    properties: frozenset[str]  # the parameters sent when there is no param template
    headers: dict[str, str]  # static headers, with the token as Authorization
    record_headers: dict[str, str]  # the same, redacted, for the RequestRecord
    bad_header: str | None  # a static header whose value holds CR, LF or NUL (refused per call)
    header_templates: dict[str, Template]
    shadows_dynamic: bool  # a configured header has the name of one the engine sets per call
    has_content_type: bool
    body: str  # "json", "form" (urlencoded) or "multipart": from the configured Content-Type
    timeout_s: float
    timeout_ms: int
    redactor: Redactor


def _build(function: Function) -> _Plan:
    a = function.http
    headers: dict[str, str] = {"Accept": "*/*", "User-Agent": USER_AGENT}
    templated: dict[str, Template] = {}
    body = "json"
    for name, value in a.headers.items():
        if name.lower() == "content-type":
            base = value.split(";")[0].strip().lower()
            if base == FORM_TYPE:
                body = "form"
            elif base == MULTIPART_TYPE:
                body = "multipart"
                continue  # the boundary is chosen per request: the header is set with it
        if name.lower() == "accept-encoding":
            continue  # the engine decodes the body itself, within its budget: see decoding.py
        if "{" in value:
            templated[name] = Template(value)
        else:
            headers[name] = value
    token = a.token
    if token is not None:
        for name in [h for h in headers if h.lower() == "authorization"]:
            del headers[name]
        headers["Authorization"] = token
    headers["Accept-Encoding"] = ACCEPT_ENCODING
    redactor = Redactor(function_secrets(token, a.headers))
    parts = parse_string(a.url)
    static_url = str(httpx.URL(a.url)) if len(parts) == 1 and isinstance(parts[0], str) else None
    return _Plan(
        name=function.name,
        method=a.method,
        query=a.method in QUERY_METHODS,
        url_parts=parts,
        url=static_url,
        record_url=redactor.text(static_url) if static_url is not None else None,
        param=Template(a.param) if a.param is not None else None,
        properties=frozenset(function.properties),
        headers=headers,
        record_headers=redactor.headers(headers),
        bad_header=next((k for k, v in headers.items() if _BAD_VALUE.search(v)), None),
        header_templates=templated,
        shadows_dynamic=not _DYNAMIC_HEADERS.isdisjoint([*headers, *templated]),
        has_content_type=any(h.lower() == "content-type" for h in headers),
        body=body,
        timeout_s=a.timeout_ms / 1000,
        timeout_ms=a.timeout_ms,
        redactor=redactor,
    )


plan_for: PerObjectCache[Function, _Plan] = PerObjectCache(_build)


def _path_value(text: str) -> str:
    encoded = quote(text, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def render_url(
    parts: list[str | Specifier | Variable], values: dict[str, Any], variables: dict[str, Any]
) -> str:
    """The URL with path/query placeholders filled and percent-encoded: a value can add text to a
    path segment but never change the scheme, host, port or the path's structure."""
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, Variable):
            if part.name not in variables:
                raise TemplateError(
                    f"context variable {part.text} in the URL is not set for this call"
                )
            out.append(_path_value(str(variables[part.name])))
        else:
            if part.name not in values:
                raise TemplateError(f"the URL needs {part.name!r}, which was not given")
            out.append(_path_value(format_specifier(part, values[part.name])))
    return "".join(out)


def _text(value: Any) -> str:
    """A form/query value as httpx writes it: true/false, "" for null, JSON for objects."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _pairs(rendered: dict[str, Any]) -> list[tuple[str, str]]:
    """Query or form pairs; a list repeats its key (``tag=a&tag=b``)."""
    pairs: list[tuple[str, str]] = []
    for key, value in rendered.items():
        value = _query_value(value)
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, _text(item)))
    return pairs


def with_query(url: str, query: str) -> str:
    """``url`` with ``query`` added to the query it may already have."""
    if not query:
        return url
    url, hash_, fragment = url.partition("#")
    glue = "" if url.endswith(("?", "&")) else "&" if "?" in url else "?"
    return f"{url}{glue}{query}{hash_}{fragment}"


def _query_value(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, list):
        return [_query_value(v) for v in value]
    return value  # httpx renders bool as true/false and numbers as their text


def _multipart_fields(rendered: dict[str, Any]) -> list[tuple[str, tuple[None, str]]]:
    """Text parts (no files): a list gives one part per item under the same name."""
    fields: list[tuple[str, tuple[None, str]]] = []
    for key, value in rendered.items():
        for item in value if isinstance(value, list) else [value]:
            text = _query_value(item)
            if text is None:
                continue
            if isinstance(text, bool):
                text = "true" if text else "false"
            fields.append((key, (None, str(text))))
    return fields


#: Every byte of a body mapped to 1 (an ASCII digit) or 0, to find runs of digits at C speed.
_DIGITS = bytes(1 if 0x30 <= i <= 0x39 else 0 for i in range(256))
#: 19 digits in a row: perhaps an integer beyond 64 bits, which orjson reads as a float.
_LONG_RUN = b"\x01" * 19


#: What :func:`orjson_exact` returns when orjson's reading might not be json's.
INEXACT: Any = object()


def orjson_exact(text: str, raw: bytes | None = None) -> Any:
    """``json.loads(text)``'s value, read by orjson (several times faster), or :data:`INEXACT`
    where orjson's value could differ or it refuses the text (json accepts NaN, Infinity and
    lone surrogates; orjson reads an integer beyond 64 bits as a float). ``raw``: the bytes
    ``text`` was decoded (and redacted) from, when known: a run of digits in ``text`` is one
    in ``raw``."""
    if raw is None:
        raw = text.encode("utf-8", "surrogatepass")
    if _LONG_RUN in raw.translate(_DIGITS):
        return INEXACT
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return INEXACT


def _parse_json(text: str, raw: bytes) -> Any:
    """``json.loads(text)``, faster where orjson gives the same value; else json's value or
    json's error (with its message and position)."""
    value = orjson_exact(text, raw)
    return json.loads(text) if value is INEXACT else value


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_json_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _c_json_body() -> Callable[[Any], str] | None:
    """``json.dumps(value, ensure_ascii=False, allow_nan=False)`` without its two Python
    layers: the same C encoder, with markers of its own per call (a cycle is still refused).
    ``None`` where this Python's encoder does not take these arguments or differs."""
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None

    def encode(value: Any) -> str:
        chunks = make(
            {}, _not_serializable, encode_basestring, None, ": ", ", ", False, False, False
        )
        text: str = "".join(chunks(value, 0))
        return text

    sample = {"a": [1, 2.5, None, True, {"b": "é\n"}], "c": "x"}
    try:
        if encode(sample) == _json_encoder.encode(sample):
            return encode
    except Exception:  # pragma: no cover - another interpreter's encoder
        pass
    return None  # pragma: no cover


_json_body: Callable[[Any], str] = _c_json_body() or _json_encoder.encode


def idempotency_key(call_id: str, tool_call_id: str | None, function: str) -> str:
    """Same call, same tool call -> same key: a retried request is recognisable as a repeat."""
    seed = f"{call_id}:{tool_call_id}:{function}" if tool_call_id else uuid.uuid4().hex
    digest: str = _sha256(seed.encode()).hexdigest()
    return digest[:32]


class HttpRunner:
    """``async run(invocation) -> ToolResult`` for functions whose action is ``http``."""

    def __init__(
        self,
        transport: Transport,
        *,
        max_response_bytes: int = 1024 * 1024,
        result_max_bytes: int = 16 * 1024,
        max_redirects: int = 5,
    ) -> None:
        self.transport = transport
        self.max_response_bytes = max_response_bytes
        self.result_max_bytes = result_max_bytes
        self.max_redirects = max_redirects
        # The function's timeout bounds the whole request (connect, redirects, body).
        self.deadlines = Deadlines()

    def build_request(self, inv: Invocation) -> tuple[Request, RequestRecord]:
        return self._build_request(plan_for(inv.function), inv)

    def _build_request(self, plan: _Plan, inv: Invocation) -> tuple[Request, RequestRecord]:
        values, variables = inv.values, inv.variables
        url = plan.url or str(httpx.URL(render_url(plan.url_parts, values, variables)))
        if plan.param is None:
            props = plan.properties
            rendered: Any = {k: v for k, v in values.items() if k in props}
        else:
            rendered = plan.param.render(values, variables)
            if rendered is OMIT:
                rendered = None
        if plan.bad_header is not None:
            raise ValueError(f"the header {plan.bad_header!r} would contain a line break or NUL")
        ctx = inv.context
        call_id = ctx.call_id
        # What varies per call is checked here; the static headers were checked once (_build).
        if _BAD_VALUE.search(call_id):
            raise ValueError("the header 'X-Voicefn-Call-Id' would contain a line break or NUL")
        dynamic = {"X-Voicefn-Call-Id": call_id}
        agent_id = ctx.agent_id
        if agent_id:
            if _BAD_VALUE.search(agent_id):
                raise ValueError(
                    "the header 'X-Voicefn-Agent-Id' would contain a line break or NUL"
                )
            dynamic["X-Voicefn-Agent-Id"] = agent_id
        if plan.header_templates:
            headers = dict(plan.headers)
            record_headers = dict(plan.record_headers)
            for name, tpl in plan.header_templates.items():
                value = str(tpl.render(values, variables))
                if _BAD_VALUE.search(value):
                    raise ValueError(f"the header {name!r} would contain a line break or NUL")
                headers[name] = value
                record_headers.update(plan.redactor.headers({name: value}))
        else:
            headers = plan.headers
            record_headers = plan.record_headers
        body: bytes | None = None
        if plan.query:
            if isinstance(rendered, dict) and rendered:
                url = with_query(url, urlencode(_pairs(rendered)))
        else:
            dynamic["Idempotency-Key"] = idempotency_key(call_id, inv.tool_call_id, plan.name)
            if plan.body == "form" and isinstance(rendered, dict):
                body = urlencode(_pairs(rendered)).encode()
            elif plan.body == "multipart" and isinstance(rendered, dict):
                multipart = httpx.Request("POST", url, files=_multipart_fields(rendered))
                body = multipart.read()  # built once, so that a redirect can resend it
                dynamic["Content-Type"] = multipart.headers["Content-Type"]
            elif rendered is not None:
                body = _json_body(rendered).encode()
                if not plan.has_content_type:
                    dynamic["Content-Type"] = "application/json"
        # The headers in order: static and templated ones (a dynamic one with the same name
        # replaces its value in place, as dict.update does), then the dynamic ones.
        if plan.shadows_dynamic:
            items = list({**headers, **dynamic}.items())
        else:
            items = [*headers.items(), *dynamic.items()]
        redact = plan.redactor
        if url is plan.url:
            record_url = plan.record_url or url
        else:
            record_url = redact.text(url) if redact else url
        record = RequestRecord(
            method=plan.method,
            url=record_url,
            headers={**record_headers, **dynamic},
            body=None if plan.query else rendered,
        )
        return Request(plan.method, url, items, body), record

    async def run(self, inv: Invocation) -> ToolResult:
        result = inv.result
        t0 = time.perf_counter()
        try:
            # A function that skipped validation can hold a URL or header no request can carry.
            plan = plan_for(inv.function)
            request, result.request = self._build_request(plan, inv)
        except (TemplateError, ValueError, TypeError, httpx.InvalidURL) as exc:
            return self._fail(inv, "template", f"The request could not be built: {exc}")
        t1 = time.perf_counter()
        timings = result.timings
        timings.render_ms = (t1 - t0) * 1000
        timings.time_to_request_ms = (t1 - inv.started) * 1000
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %s", plan.name, result.request.method, result.request.url)
        try:
            with self.deadlines.limit(plan.timeout_s):
                response = await fetch(
                    self.transport,
                    request,
                    max_body=self.max_response_bytes,
                    max_redirects=self.max_redirects,
                )
        except FetchFailed as f:
            redact = plan.redactor
            detail = f.detail if f.hop is None else f"{f.detail} (at {redact.text(f.hop)})"
            return self._fail(inv, f.reason, detail, f.status, None, t1)
        except TimeoutError:
            return self._fail(
                inv, "timeout", f"No complete response within {plan.timeout_ms} ms", None, None, t1
            )
        except Exception as exc:
            reason, detail = describe_send_error(exc, request.url)
            return self._fail(inv, reason, plan.redactor.text(detail), None, None, t1)
        timings.request_ms = (time.perf_counter() - t1) * 1000
        status = response.status
        result.status = status
        content_type = response.headers.get("content-type", "")
        return self._success(inv, status, response.body, content_type, plan.redactor)

    def _success(
        self,
        inv: Invocation,
        status: int,
        body: bytes,
        content_type: str,
        redact: Redactor | None = None,
    ) -> ToolResult:
        result = inv.result
        if redact is None:
            redact = plan_for(inv.function).redactor
        data: Any
        is_json = "json" in content_type.lower()
        text = body.decode("utf-8", errors="replace")
        if redact:
            text = redact.text(text)
        if is_json or (not content_type and text[:1] in "{["):
            try:
                data = _parse_json(text, body) if text.strip() else None
            except json.JSONDecodeError as exc:
                if 200 <= status < 300 and is_json:
                    return self._fail(
                        inv,
                        "invalid_json",
                        f"Endpoint returned invalid JSON ({exc.msg} at position {exc.pos})",
                        status,
                        text[:2048],
                    )
                data = text
        else:
            data = text
        if not 200 <= status < 300:
            return self._fail(inv, "status", f"Endpoint returned {status}", status, data)
        result.ok = True
        result.data = data
        if data is None or data == "":
            content = error_content({"ok": True, "status": status})
        elif isinstance(data, str):
            content = data
        elif "\n" not in text:
            content = text.strip()  # already compact: no need to serialise again
        else:  # pretty-printed: compact it, whitespace costs the LLM tokens
            content = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        result.content, result.truncated = bounded(content, self.result_max_bytes)
        return result

    def _fail(
        self,
        inv: Invocation,
        reason: str,
        detail: str,
        status: int | None = None,
        body: Any = None,
        sent_at: float | None = None,
    ) -> ToolResult:
        result = inv.result
        if sent_at is not None:
            result.timings.request_ms = (time.perf_counter() - sent_at) * 1000
        payload: dict[str, Any] = {"error": "request_failed", "reason": reason}
        if status is not None:
            payload["status"] = status
        payload["detail"] = detail
        if body not in (None, ""):
            payload["body"] = _error_body(body)
        result.ok = False
        result.error = "request_failed"
        result.status = status
        result.data = payload
        result.content, result.truncated = bounded(error_content(payload), self.result_max_bytes)
        log.info("%s failed: %s: %s", inv.function.name, reason, detail)
        return result


ERROR_BODY_MAX_BYTES = 2048


def _error_body(body: Any) -> Any:
    """An error response's body, kept small: the detail is what matters to the LLM."""
    if not isinstance(body, str):
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode()) <= ERROR_BODY_MAX_BYTES:
            return body
        body = text
    return bounded(body, ERROR_BODY_MAX_BYTES)[0]


def _origin_text(url: str) -> str:
    try:
        parsed = httpx.URL(url)
        return f"{parsed.host}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"
    except Exception:
        return url[:200]


def describe_send_error(exc: Exception, url: str) -> tuple[str, str]:
    """``(reason, detail)`` for anything sending a request raised; a hop after a redirect is
    named by its own URL."""
    if isinstance(exc, HopFailed):
        reason, detail = _describe(exc.error, exc.hop)
        return reason, f"{detail} (at the redirect to {exc.hop})"
    return _describe(exc, url)


def _describe(exc: Exception, url: str) -> tuple[str, str]:
    origin = _origin_text(url)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, EgressDenied):
            return "blocked", f"Request refused by the egress policy: {cause.reason}"
        if isinstance(cause, ssl.SSLError):
            why = getattr(cause, "reason", None) or getattr(cause, "strerror", None) or cause
            return "tls", f"TLS handshake with {origin} failed: {why}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, aiohttp.ClientConnectorError):
        why = exc.os_error.strerror or str(exc.os_error) or "connection failed"
        return "connection", f"Could not connect to {origin} ({why})"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return "timeout", f"Timed out talking to {origin}"
    if isinstance(
        exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientOSError
    ):
        return (
            "connection",
            f"The connection to {origin} broke before a complete response ({exc or type(exc).__name__})",
        )
    if isinstance(exc, aiohttp.ClientResponseError):  # a response that is not valid HTTP
        return "connection", f"{origin} sent an invalid HTTP response ({exc.message})"
    if isinstance(exc, aiohttp.InvalidURL | ValueError | OverflowError | UnicodeError):
        return "invalid_url", f"The URL {url} cannot be requested ({exc})"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connection", f"Request to {origin} failed: {exc or type(exc).__name__}"
    log.exception("request to %s failed unexpectedly", origin)
    return "connection", f"Request to {origin} failed ({type(exc).__name__})"
