"""A lean client for OpenAI-compatible chat completions, shared by the calls of a process.

The openai SDK turned every request into typed objects and back: its request transform walked
(and copied) the whole history on each request, and every streamed chunk became a pydantic model,
13-19 ms of CPU per turn with a 30-message history; one SDK client per call cost 21 ms and 840 KB
more. This client speaks the same wire format directly, on aiohttp: ``POST
{base_url}/chat/completions`` with ``"stream": true``, the body serialised once by orjson, the
Server-Sent Events cut into ``data:`` payloads and each parsed into plain dicts, which
:mod:`voicefn.runtime.streaming` reads leniently::

    client = shared_client(agent.llm)       # one per endpoint, key and settings, per event loop
    async with client.stream(model, messages, tools=tools) as chunks:
        async for chunk in chunks:          # dicts, as the provider sent them
            ...

What the SDK did and this client still does: a failed request is retried (``max_retries``) on a
connection error, a timeout, HTTP 408, 409, 429 and 5xx, waiting what the server's
``Retry-After`` asks (up to 60 s) or 0.5 s doubling up to 8 s, never once the stream has started;
``timeout_s`` bounds connecting and each wait for data; the environment's proxy settings
(``HTTPS_PROXY``, ``NO_PROXY``, ...) are used; ``OPENAI_ORG_ID``/``OPENAI_PROJECT_ID`` become the ``OpenAI-Organization``/``OpenAI-Project``
headers; an ``{"error": ...}`` event in the stream is an error; ``data: [DONE]`` ends the stream.
Beyond it: a stream that ends in the middle of an event is an error (the SDK dropped the partial
event silently), an event with no data is skipped, and a server that ignores ``stream`` and
answers one JSON completion is read as one chunk. Every failure is an :class:`LLMError` whose
message names the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import os
import random
import time
import urllib.request
from collections.abc import AsyncGenerator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from yarl import URL

if TYPE_CHECKING:
    from .agent import LLMSettings

__all__ = [
    "DEFAULT_BASE_URL",
    "ChatStream",
    "LLMClient",
    "LLMConnectionError",
    "LLMError",
    "LLMStatusError",
    "LLMTimeoutError",
    "SSEDecoder",
    "close_shared_clients",
    "shared_client",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRY_STATUSES = frozenset({408, 409, 429})
_MAX_ERROR_BODY = 64 * 1024
_DRAIN_S = 0.1  # after [DONE], how long to wait for the body's end (to keep the connection)


# ------------------------------------------------------------------------------ errors


class LLMError(Exception):
    """The LLM request failed; the message names the endpoint."""

    def __init__(self, message: str, *, endpoint: str, status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class LLMStatusError(LLMError):
    """The endpoint answered with an HTTP error status; ``body`` is its parsed answer."""

    def __init__(self, message: str, *, endpoint: str, status: int, body: Any) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.body = body


class LLMTimeoutError(LLMError):
    """No connection, or no data, within the client's ``timeout_s``."""


class LLMConnectionError(LLMError):
    """The endpoint could not be reached, or the connection was lost mid-answer."""


# ------------------------------------------------------------------------------ JSON


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits, keys that are not strings: the slow path
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # what orjson refuses and json takes (NaN), or the real error


# ------------------------------------------------------------------------------ SSE


class SSEDecoder:
    """Server-Sent Events from bytes as they arrive: the data of each complete event.

    Lines may end in LF, CRLF or CR, split anywhere across reads; an event's ``data:`` lines are
    joined with LF; comments and the other fields (``event``, ``id``, ``retry``) carry nothing a
    chat completion uses (the SDK read the data of every event alike).
    """

    __slots__ = ("_data", "_partial", "_skip_lf")

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # the line being received
        self._data: list[bytes] = []  # data lines of the event being received
        self._skip_lf = False  # the last read ended in CR: a LF first in the next is its pair

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data of the events this read completed, in order."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            if chunk:
                self._partial.append(chunk)
            return []
        lines = chunk.split(b"\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
            self._partial.clear()
        tail = lines.pop()
        if tail:
            self._partial.append(tail)
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line == b"data":
                data.append(b"")
        return events

    def finish(self) -> bytes | None:
        """At the end of the body: the data of an event not closed by a blank line, if any."""
        if self._partial:
            line = b"".join(self._partial)
            self._partial.clear()
            self.feed(line + b"\n")
        if not self._data:
            return None
        data = b"\n".join(self._data)
        self._data.clear()
        return data


# ------------------------------------------------------------------------------ the client


class LLMClient:
    """One OpenAI-compatible chat-completions endpoint over a pooled aiohttp session.

    Made for sharing: every call of a process can stream through one client (see
    :func:`shared_client`). The aiohttp session is opened on first use, in the running event
    loop, and the client belongs to that loop from then on.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 1,
        max_connections: int = 1000,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        base = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.endpoint = f"{base}/chat/completions"
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_connections = max_connections
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.headers: dict[str, str] = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "voicefn",
        }
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        for env, header in (
            ("OPENAI_ORG_ID", "OpenAI-Organization"),
            ("OPENAI_PROJECT_ID", "OpenAI-Project"),
        ):
            if os.environ.get(env):
                self.headers[header] = os.environ[env]
        self.headers.update(headers or {})
        self._url = URL(self.endpoint)
        self._proxy = _env_proxy(self._url)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> LLMClient:
        """A client for an agent's ``llm`` settings (unset values from the environment)."""
        return cls(
            settings.resolved_base_url(),
            settings.resolved_api_key(),
            timeout_s=settings.timeout_s,
            max_retries=settings.max_retries,
        )

    def stream(self, model: str, messages: Sequence[Any], **options: Any) -> ChatStream:
        """A streamed chat completion: ``async with client.stream(...) as chunks``, then
        ``async for chunk in chunks``. ``options`` go into the request body as they are
        (``tools``, ``tool_choice``, ``temperature``, ...); ``messages`` is serialised as it is
        when the request is sent, never copied."""
        body = {"model": model, "messages": messages, "stream": True, **options}
        return ChatStream(self, _dumps(body))

    async def complete(self, model: str, messages: Sequence[Any], **options: Any) -> Any:
        """One chat completion, not streamed: the parsed ``chat.completion`` object."""
        body = _dumps({"model": model, "messages": messages, **options})
        response = await self._post(body)
        try:
            data = await response.read()
        except TimeoutError as exc:
            response.close()
            raise self._timeout_error(exc) from exc
        except aiohttp.ClientError as exc:
            response.close()
            raise LLMConnectionError(
                f"the connection to {self.endpoint} was lost mid-answer ({_describe(exc)})",
                endpoint=self.endpoint,
            ) from exc
        response.release()
        result = _loads(data)
        _raise_if_error(result, self.endpoint)
        return result

    @property
    def is_open(self) -> bool:
        """True from the first request until :meth:`aclose` (or its loop's shutdown, for a
        shared client)."""
        return self._session is not None and not self._session.closed

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ sending

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None:
            if self._loop is loop:
                return self._session
            raise RuntimeError(
                f"this LLMClient for {self.endpoint} belongs to another event loop: make one "
                "client per loop (shared_client() does)"
            )
        ssl: Any = True
        if self._url.scheme == "https":
            from ..transport import default_ssl_context

            ssl = default_ssl_context()
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, limit_per_host=0, ssl=ssl, ttl_dns_cache=60
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self.headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,  # the proxy is read once (aiohttp would ask a thread per request)
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.timeout_s,
                sock_connect=self.timeout_s,
                sock_read=self.timeout_s,
            ),
        )
        self._loop = loop
        return self._session

    async def _post(self, body: bytes) -> aiohttp.ClientResponse:
        """The answer's headers (status < 400), after the retries a failure allows."""
        session = self._open()
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await session.post(self._url, data=body, proxy=self._proxy)
            except TimeoutError as exc:
                error: LLMError = self._timeout_error(exc)
                retry = True
            except (aiohttp.ClientError, OSError) as exc:
                error = LLMConnectionError(
                    f"cannot reach {self.endpoint}: {_unreachable(exc)}", endpoint=self.endpoint
                )
                retry = True
            else:
                if response.status < 400:
                    return response
                error = await self._status_error(response)
                retry = _should_retry(response)
                retry_after = _retry_after(response.headers)
            if not retry or attempt >= self.max_retries:
                raise error
            await asyncio.sleep(_backoff(attempt, retry_after))
            attempt += 1

    def _timeout_error(self, exc: BaseException) -> LLMTimeoutError:
        what = (
            "could not connect to"
            if isinstance(exc, aiohttp.ConnectionTimeoutError)
            else "no answer from"
        )
        return LLMTimeoutError(
            f"{what} {self.endpoint} within {self.timeout_s:g} s", endpoint=self.endpoint
        )

    async def _status_error(self, response: aiohttp.ClientResponse) -> LLMStatusError:
        raw = b""
        try:
            async for piece in response.content.iter_chunked(16384):
                raw += piece
                if len(raw) >= _MAX_ERROR_BODY:
                    break
        except (aiohttp.ClientError, TimeoutError, OSError):
            pass  # the status says enough
        finally:
            response.close()
        try:
            body: Any = _loads(raw) if raw else None
        except ValueError:
            body = raw[:_MAX_ERROR_BODY].decode("utf-8", "replace")
        message = _error_message(body) or response.reason or "no detail"
        return LLMStatusError(
            f"HTTP {response.status} from {self.endpoint}: {message}",
            endpoint=self.endpoint,
            status=response.status,
            body=body,
        )


class ChatStream:
    """One streamed chat completion (see :meth:`LLMClient.stream`).

    Entering sends the request (with the client's retries) and waits for the answer's headers;
    iterating yields each chunk object; leaving releases the connection to the pool when the
    body was read to its end, and closes it otherwise.
    """

    __slots__ = ("_body", "_client", "_done", "_iterator", "_response")

    def __init__(self, client: LLMClient, body: bytes) -> None:
        self._client = client
        self._body = body
        self._response: aiohttp.ClientResponse | None = None
        self._iterator: AsyncGenerator[dict[str, Any], None] | None = None
        self._done = False

    async def __aenter__(self) -> ChatStream:
        self._response = await self._client._post(self._body)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            await iterator.aclose()
        response, self._response = self._response, None
        if response is None:
            return
        if exc_type is None and self._done and not response.content.at_eof():
            # [DONE] came; the body's end is normally right behind it. Waiting for it (briefly,
            # as the SDK did) keeps the connection for the next request.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_DRAIN_S):
                    while await response.content.readany():
                        pass
        if response.content.at_eof():
            response.release()
        else:
            response.close()

    def __aiter__(self) -> AsyncGenerator[dict[str, Any], None]:
        if self._response is None:
            raise RuntimeError("use `async with client.stream(...) as chunks` first")
        if self._iterator is None:
            self._iterator = self._chunks(self._response)
        return self._iterator

    async def _chunks(
        self, response: aiohttp.ClientResponse
    ) -> AsyncGenerator[dict[str, Any], None]:
        endpoint = self._client.endpoint
        try:
            if response.content_type == "application/json":  # a server that ignored "stream"
                whole = _loads(await response.read())
                _raise_if_error(whole, endpoint)
                self._done = True
                for chunk in _as_chunks(whole):
                    yield chunk
                return
            decoder = SSEDecoder()
            async for piece in response.content.iter_any():
                for data in decoder.feed(piece):
                    if data.startswith(b"[DONE]"):
                        self._done = True
                        return
                    if not data:
                        continue
                    chunk = _loads(data)
                    if isinstance(chunk, dict):
                        if chunk.get("error"):
                            _raise_if_error(chunk, endpoint)
                        yield chunk
            last = decoder.finish()  # the body ended; was an event left open?
        except TimeoutError as exc:
            raise self._client._timeout_error(exc) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise LLMConnectionError(
                f"the connection to {endpoint} was lost mid-stream ({_describe(exc)})",
                endpoint=endpoint,
            ) from exc
        self._done = True
        if last is None or last.startswith(b"[DONE]"):
            return
        try:
            chunk = _loads(last)
        except ValueError:
            raise LLMConnectionError(
                f"the stream from {endpoint} ended in the middle of an event", endpoint=endpoint
            ) from None
        if isinstance(chunk, dict):  # a last event without its blank line: whole, so kept
            _raise_if_error(chunk, endpoint)
            yield chunk


def _env_proxy(url: URL) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``,
    ``NO_PROXY``), as the SDK's httpx client used it."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme or "")
    if not proxy or urllib.request.proxy_bypass(url.host or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _as_chunks(completion: Any) -> list[dict[str, Any]]:
    """A whole ``chat.completion`` as the one chunk a stream would have carried."""
    if not isinstance(completion, dict):
        return []
    choices = []
    for choice in completion.get("choices") or ():
        if isinstance(choice, dict):
            delta = choice.get("message")
            choices.append(
                {
                    "index": choice.get("index", 0),
                    "delta": delta if isinstance(delta, dict) else {},
                    "finish_reason": choice.get("finish_reason"),
                }
            )
    return [{**completion, "object": "chat.completion.chunk", "choices": choices}]


def _raise_if_error(value: Any, endpoint: str) -> None:
    if isinstance(value, dict) and value.get("error"):
        message = _error_message(value) or "an error occurred during streaming"
        raise LLMError(f"{endpoint} answered with an error: {message}", endpoint=endpoint)


def _error_message(body: Any) -> str | None:
    """OpenAI's ``{"error": {"message": ...}}`` and the usual variants, shortened."""
    text: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            text = error.get("message") or error.get("type") or error.get("code")
        elif isinstance(error, str):
            text = error
        text = text or body.get("message") or body.get("detail")
    elif isinstance(body, str):
        text = body
    if text is None or text == "":
        return None
    line = " ".join((text if isinstance(text, str) else json.dumps(text)).split())
    return line if len(line) <= 300 else line[:299] + "…"


def _should_retry(response: aiohttp.ClientResponse) -> bool:
    hint = response.headers.get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    return response.status in _RETRY_STATUSES or response.status >= 500


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait (``retry-after-ms``, ``retry-after``), if sensible."""
    value: float | None = None
    with contextlib.suppress(ValueError, TypeError):
        if "retry-after-ms" in headers:
            value = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            raw = headers["retry-after"]
            try:
                value = float(raw)
            except ValueError:
                when = email.utils.parsedate_to_datetime(raw)
                value = when.timestamp() - time.time()
    return value if value is not None and 0 < value <= 60 else None


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return retry_after
    return float(min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random()))


def _unreachable(exc: BaseException) -> str:
    """Why a connection could not be made, in a few words."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"its certificate was refused ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"the host name did not resolve ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return str(exc.os_error.strerror or exc.os_error)
    return _describe(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------------------ sharing


class _LoopClients:
    """The shared clients of one event loop, closed when the loop shuts down.

    An async generator, started and left at its ``yield``, holds them: ``asyncio.run`` (and
    ``asyncio.Runner``, uvloop) close every unfinished async generator of the loop once its tasks
    are done, and this one's ``finally`` closes the clients' sessions. Nothing waits in
    ``asyncio.all_tasks()`` meanwhile.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: dict[tuple[Any, ...], LLMClient] = {}
        self.holder = self._close_at_shutdown()
        # Run it to its yield now: the loop's first-iteration hook registers it for shutdown.
        with contextlib.suppress(StopIteration):
            self.holder.asend(None).send(None)

    async def _close_at_shutdown(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if _by_loop.get(self.loop) is self:
                del _by_loop[self.loop]
            for client in self.clients.values():
                with contextlib.suppress(Exception):
                    await client.aclose()


_by_loop: dict[asyncio.AbstractEventLoop, _LoopClients] = {}


def shared_client(settings: LLMSettings) -> LLMClient:
    """The running loop's client for these settings (endpoint, key, timeout, retries): made
    once, then shared by every call; closed when the loop shuts down."""
    loop = asyncio.get_running_loop()
    owner = _by_loop.get(loop)
    if owner is None:
        owner = _by_loop[loop] = _LoopClients(loop)
    key = (
        (settings.resolved_base_url() or DEFAULT_BASE_URL).rstrip("/"),
        settings.resolved_api_key(),
        settings.timeout_s,
        settings.max_retries,
    )
    client = owner.clients.get(key)
    if client is None:
        client = owner.clients[key] = LLMClient.from_settings(settings)
    return client


async def close_shared_clients() -> None:
    """Close the running loop's shared clients now (a server's orderly shutdown)."""
    owner = _by_loop.pop(asyncio.get_running_loop(), None)
    if owner is not None:
        await owner.holder.aclose()
