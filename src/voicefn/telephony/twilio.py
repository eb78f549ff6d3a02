"""Carry out ``transfer_call`` and ``send_sms`` on Twilio, through the official ``twilio`` SDK.

The call runtime never touches the telephony network itself: it emits
:class:`~voicefn.runtime.events.TransferRequested` and :class:`~voicefn.runtime.events.SmsRequested`
events and the host carries them out, for instance with :class:`TwilioTelephony`::

    tel = TwilioTelephony.from_env()
    await tel.transfer(event.call_sid, event.number, announce="Transferring you now.")
    await tel.send_sms(event.to, event.body, from_=event.from_ or "+15550001111")

The SDK is synchronous (``requests``); its calls run in a worker thread with
:func:`asyncio.to_thread`, bounded by the HTTP client's timeout. Every failure - an error answer
from Twilio, a refused connection, a timeout, an unreadable answer - is raised as
:class:`TelephonyError`, whose message never contains the auth token.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

import requests
from twilio.base.exceptions import (  # type: ignore[import-untyped]
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]
from twilio.twiml.voice_response import VoiceResponse  # type: ignore[import-untyped]

__all__ = ["TelephonyError", "TwilioTelephony"]

ENV_ACCOUNT_SID = "TWILIO_ACCOUNT_SID"
ENV_AUTH_TOKEN = "TWILIO_AUTH_TOKEN"
ENV_API_BASE_URL = "TWILIO_API_BASE_URL"

# A SID goes into the request path unquoted by the SDK: allow letters and digits only.
_SID = re.compile(r"[A-Za-z0-9]+")

T = TypeVar("T")


class TelephonyError(Exception):
    """A telephony operation failed.

    ``code`` is Twilio's error code when Twilio answered with one (e.g. 20003, 21211), else the
    HTTP status of the answer, else ``None`` (connection failure, bad configuration or input).
    ``status`` is the HTTP status when there was an answer. The message is safe to log: it never
    contains the auth token.
    """

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class TwilioTelephony:
    """Transfers live calls and sends SMS through Twilio's REST API (``api.twilio.com``).

    ``base_url`` replaces ``https://api.twilio.com`` (e.g. ``http://127.0.0.1:8080`` for a local
    server speaking Twilio's wire format, such as :class:`voicefn.testing.twilio_server.FakeTwilio`).
    ``timeout_s`` bounds each HTTP request (connect and read). A ready-made ``client`` may be
    passed instead; its own HTTP client (and timeout) are then used as they are, and ``base_url``
    still applies.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        client: Client | None = None,
    ) -> None:
        if not account_sid:
            raise TelephonyError("Twilio account SID is empty")
        if not auth_token:
            raise TelephonyError("Twilio auth token is empty")
        if not timeout_s > 0:
            raise TelephonyError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.account_sid = account_sid
        self._token = auth_token
        self.timeout_s = float(timeout_s)
        self._owns_client = client is None
        if client is None:
            client = Client(
                account_sid,
                auth_token,
                http_client=TwilioHttpClient(timeout=self.timeout_s),
            )
        self._client: Any = client
        self.base_url: str | None = None
        if base_url is not None:
            base_url = base_url.strip().rstrip("/")
            if not re.match(r"https?://[^/\s]+", base_url):
                raise TelephonyError("base_url must be an http:// or https:// URL")
            # The Api domain (created once, cached by the client) holds the root that every
            # api.twilio.com resource URL - /2010-04-01/Accounts/... - is joined to.
            self._client.api.base_url = base_url
            # Edge/region settings (possibly from TWILIO_EDGE / TWILIO_REGION) would rewrite the
            # host of every URL; an explicit base URL is meant to be used exactly as given.
            self._client.edge = None
            self._client.region = None
            self.base_url = base_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, timeout_s: float = 10.0) -> Self:
        """Build from ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and optionally
        ``TWILIO_API_BASE_URL`` (read from ``env``, default :data:`os.environ`)."""
        env = os.environ if env is None else env
        missing = [name for name in (ENV_ACCOUNT_SID, ENV_AUTH_TOKEN) if not env.get(name)]
        if missing:
            raise TelephonyError(
                f"Twilio is not configured: set the environment variable{'s' if len(missing) > 1 else ''} "
                + " and ".join(missing)
            )
        return cls(
            env[ENV_ACCOUNT_SID],
            env[ENV_AUTH_TOKEN],
            base_url=env.get(ENV_API_BASE_URL) or None,
            timeout_s=timeout_s,
        )

    def __repr__(self) -> str:
        return f"TwilioTelephony(account_sid={self.account_sid!r}, base_url={self.base_url!r})"

    # --- operations -----------------------------------------------------------------------------

    async def transfer(self, call_sid: str, number: str, *, announce: str | None = None) -> str:
        """Redirect the live call ``call_sid`` to ``number``: ``<Say>announce</Say><Dial>number</Dial>``.

        Returns the call's status as Twilio reports it (``"in-progress"`` normally).
        """
        if not call_sid or not _SID.fullmatch(call_sid):
            raise TelephonyError(f"invalid call SID {call_sid!r}")
        if not number or not number.strip():
            raise TelephonyError("transfer number is empty")
        twiml = self.transfer_twiml(number.strip(), announce=announce)

        def update() -> Any:
            return self._client.calls(call_sid).update(twiml=twiml)

        call = await self._run("transfer call", update)
        return str(call.status)

    async def send_sms(
        self,
        to: str,
        body: str,
        *,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
    ) -> str:
        """Send ``body`` to ``to``, from the number ``from_`` or through the Messaging Service
        ``messaging_service_sid`` (at least one is needed). Returns the message SID (``SM...``)."""
        if not to or not to.strip():
            raise TelephonyError("SMS recipient ('to') is empty")
        if not body:
            raise TelephonyError("SMS body is empty")
        if not from_ and not messaging_service_sid:
            raise TelephonyError("send_sms needs from_ or messaging_service_sid")
        kwargs: dict[str, str] = {"to": to.strip(), "body": body}
        if from_:
            kwargs["from_"] = from_
        if messaging_service_sid:
            kwargs["messaging_service_sid"] = messaging_service_sid

        def create() -> Any:
            return self._client.messages.create(**kwargs)

        message = await self._run("send SMS", create)
        return str(message.sid)

    @staticmethod
    def transfer_twiml(number: str, *, announce: str | None = None) -> str:
        """The TwiML a transfer puts on the call (XML-escaped by the SDK's ``VoiceResponse``)."""
        response = VoiceResponse()
        if announce:
            response.say(announce)
        response.dial(number)
        return str(response.to_xml())

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled HTTP connections (only those of a client this object created)."""
        if not self._owns_client:
            return
        session = getattr(self._client.http_client, "session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------------

    async def _run(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except TwilioRestException as exc:
            status = _int_or_none(exc.status)
            code = _int_or_none(exc.code) or status
            raise TelephonyError(
                self._safe(f"Twilio could not {what}: HTTP {status}, code {code}: {exc.msg}"),
                code=code,
                status=status,
            ) from None
        except TwilioServiceException as exc:
            status = _int_or_none(exc.status)
            code = _int_or_none(exc.code) or status
            detail = f"{exc.title}: {exc.detail}" if exc.detail else str(exc.title)
            raise TelephonyError(
                self._safe(f"Twilio could not {what}: HTTP {status}, code {code}: {detail}"),
                code=code,
                status=status,
            ) from None
        except requests.Timeout as exc:
            raise TelephonyError(
                self._safe(f"Twilio could not {what}: timed out after {self.timeout_s:g}s ({exc})")
            ) from None
        except requests.RequestException as exc:
            raise TelephonyError(
                self._safe(f"Twilio could not {what}: {type(exc).__name__}: {exc}")
            ) from None
        except (TwilioException, ValueError) as exc:
            # ValueError: a 2xx answer whose body is not JSON (json.JSONDecodeError).
            raise TelephonyError(
                self._safe(f"Twilio could not {what}: {type(exc).__name__}: {exc}")
            ) from None

    def _safe(self, text: str) -> str:
        return text.replace(self._token, "[redacted]") if self._token else text


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
