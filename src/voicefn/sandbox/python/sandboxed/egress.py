"""httpx inside the sandbox: the child has no network, so every request goes over the channel.

The supervisor hands each request to the caller's ``egress`` callback (which applies the
platform's egress policy) and sends the response back. :func:`patch_httpx` makes
``httpx.AsyncClient()``, ``httpx.Client()`` and ``httpx.get()`` & co. use this transport.
"""

from __future__ import annotations

import base64
import math
import sys
from collections.abc import Callable
from typing import Any

import httpx

from .channel import Channel

MAX_REQUEST_BODY = 4 << 20

_channel: Channel | None = None


def use_channel(channel: Channel | None) -> None:
    """The channel this invocation's requests go over (None: none, outside an invocation)."""
    global _channel
    _channel = channel


def _current_channel() -> Channel:
    if _channel is None:
        raise RuntimeError("no sandbox channel")
    return _channel


class EgressRefused(httpx.ConnectError):
    """The supervisor's egress callback refused or failed the request."""


MAX_TIMEOUT_S = 1e6  # the supervisor refuses more (a protocol violation)


def _timeout_of(request: httpx.Request) -> float | None:
    """The request's longest timeout, clamped to [0, MAX_TIMEOUT_S]; None when it has none."""
    timeouts = request.extensions.get("timeout") or {}
    values: list[float] = []
    for value in timeouts.values():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        values.append(float(min(max(value, 0), MAX_TIMEOUT_S)))
    return max(values) if values else None


def _request_message(request: httpx.Request, body: bytes) -> dict[str, Any]:
    if len(body) > MAX_REQUEST_BODY:
        raise httpx.RequestError(
            f"request body larger than {MAX_REQUEST_BODY} bytes", request=request
        )
    return {
        "t": "http",
        "method": request.method,
        "url": str(request.url),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw],
        "body": base64.b64encode(body).decode(),
        "timeout": _timeout_of(request),
    }


def _response(resp: dict[str, Any], request: httpx.Request) -> httpx.Response:
    if "error" in resp:
        raise EgressRefused(str(resp["error"]), request=request)
    try:
        status = int(resp["status"])
        headers = [(str(k), str(v)) for k, v in resp.get("headers") or []]
        content = base64.b64decode(resp.get("body") or "")
    except (KeyError, TypeError, ValueError):
        raise httpx.RemoteProtocolError("malformed response", request=request) from None
    return httpx.Response(status, headers=headers, content=content, request=request)


class ProtocolTransport(httpx.AsyncBaseTransport):
    """Sends each request over the sandbox channel; the supervisor's egress callback answers."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        msg = _request_message(request, await request.aread())
        try:
            resp = await _current_channel().request(msg, _timeout_of(request))
        except TimeoutError:
            raise httpx.ReadTimeout("no response in time", request=request) from None
        return _response(resp, request)


class SyncProtocolTransport(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        msg = _request_message(request, request.read())
        try:
            resp = _current_channel().request_blocking(msg, _timeout_of(request))
        except TimeoutError:
            raise httpx.ReadTimeout("no response in time", request=request) from None
        except ConnectionError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        return _response(resp, request)


def _through_egress(
    kwargs: dict[str, Any], transport: Callable[[], httpx.BaseTransport | httpx.AsyncBaseTransport]
) -> dict[str, Any]:
    """A client's keyword arguments with the default transport going through egress."""
    if kwargs.get("transport") is None:
        kwargs["transport"] = transport()
    kwargs.pop("proxy", None)
    kwargs["trust_env"] = False
    return kwargs


class SandboxAsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` inside the sandbox: the default transport goes through egress."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_through_egress(kwargs, ProtocolTransport))


class SandboxClient(httpx.Client):
    """``httpx.Client`` inside the sandbox: the default transport goes through egress."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_through_egress(kwargs, SyncProtocolTransport))


def patch_httpx() -> None:
    httpx.AsyncClient = SandboxAsyncClient  # type: ignore[misc]
    httpx.Client = SandboxClient  # type: ignore[misc]
    api = sys.modules.get("httpx._api")
    if api is not None:
        api.Client = SandboxClient  # type: ignore[attr-defined]
