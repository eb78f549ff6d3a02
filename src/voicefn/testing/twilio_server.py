"""A real local HTTP server that speaks Twilio's REST wire format, for tests and demos.

It implements the two endpoints :class:`voicefn.telephony.twilio.TwilioTelephony` uses, as the
official ``twilio`` SDK calls them (form-encoded POST, HTTP Basic auth, JSON answers)::

    POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json   (Twiml, Url, Method, Status, ...)
    POST /2010-04-01/Accounts/{AccountSid}/Messages.json          (To, From, MessagingServiceSid, Body, ...)

Errors are answered the way Twilio answers them::

    {"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}

Usage::

    with FakeTwilio() as fake:
        tel = TwilioTelephony(fake.account_sid, fake.auth_token, base_url=fake.base_url)
        ...
        fake.requests[-1].form["Twiml"]
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from ._http import JSONHandler, LocalHTTPServer

__all__ = ["FakeTwilio", "RecordedRequest"]

API_VERSION = "2010-04-01"

_CALL_PATH = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>[^/]+)\.json")
_MESSAGES_PATH = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json")
_CALL_END_STATUSES = {"completed", "canceled", "busy", "failed", "no-answer"}


class RecordedRequest(NamedTuple):
    """One request as it arrived. ``form`` holds the first value of each form field; ``headers``
    are keyed by lower-case name."""

    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]


class _Failure(NamedTuple):
    status: int
    code: int | None
    message: str


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two-letter prefix and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def _twilio_date(when: datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


class _Handler(JSONHandler["FakeTwilio"]):
    server_version = "FakeTwilio/1.0"

    def _serve(self) -> None:
        body = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.owner._handle(self.command, self.path, headers, body)
        extra = {"Twilio-Request-Id": new_sid("RQ")}
        if status == 401:
            extra["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        self.send_json(
            status,
            payload,
            extra,
            content_type="application/json; charset=utf-8",
            ensure_ascii=True,
        )

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class FakeTwilio(LocalHTTPServer):
    """Threaded HTTP server on 127.0.0.1 (ephemeral port) answering like ``api.twilio.com``.

    Use as a (sync or async) context manager, or call `start` / `close`.

    ``known_calls``: if given, only these call SIDs exist (others get 404 / code 20404); if not,
    any call SID is treated as a live call. Calls that were ended (``Status=completed``) answer
    400 / code 21220 to further redirects, as Twilio does.
    """

    _handler_class = _Handler
    _not_running_message = "FakeTwilio is not started"

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        known_calls: Iterable[str] | None = None,
        caller: str = "+15005550006",
        callee: str = "+15005550001",
    ) -> None:
        super().__init__()
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.caller = caller
        self.callee = callee
        self.requests: list[RecordedRequest] = []
        self.messages: list[dict[str, Any]] = []
        self.calls: dict[str, dict[str, Any]] = {}
        self._restrict_calls = known_calls is not None
        for sid in known_calls or ():
            self.calls[sid] = self._new_call(sid)
        self._failures: list[_Failure] = []
        self._delays: list[float] = []

    # --- control --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` - what to use in place of ``https://api.twilio.com``."""
        return f"http://{self._host}:{self._bound_port()}"

    def fail_next(self, status: int, code: int | None = None, message: str = "Error") -> None:
        """Answer the next request (whatever it is) with this Twilio error. Calls queue up."""
        with self._lock:
            self._failures.append(_Failure(status, code, message))

    def delay_next(self, seconds: float) -> None:
        """Wait ``seconds`` before answering the next request (for timeout tests)."""
        with self._lock:
            self._delays.append(seconds)

    # --- behaviour ------------------------------------------------------------------------------

    def _handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        path = urlsplit(raw_path).path
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        form = {k: v[0] for k, v in fields.items()}
        with self._lock:
            self.requests.append(RecordedRequest(method, path, form, headers))
            delay = self._delays.pop(0) if self._delays else 0.0
            failure = self._failures.pop(0) if self._failures else None
        if delay:
            time.sleep(delay)
        if failure is not None:
            return _error(failure.status, failure.code, failure.message)
        if not self._authorized(headers.get("authorization", "")):
            return _error(401, 20003, "Authenticate")

        if m := _CALL_PATH.fullmatch(path):
            if method != "POST":
                return _error(405, 20004, "Method not allowed")
            if m["account"] != self.account_sid:
                return _not_found(path)
            return self._update_call(m["sid"], form, path)
        if m := _MESSAGES_PATH.fullmatch(path):
            if method != "POST":
                return _error(405, 20004, "Method not allowed")
            if m["account"] != self.account_sid:
                return _not_found(path)
            return self._create_message(form)
        return _not_found(path)

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        return (
            bool(sep)
            and secrets.compare_digest(user, self.account_sid)
            and secrets.compare_digest(password, self.auth_token)
        )

    def _new_call(self, sid: str) -> dict[str, Any]:
        now = _twilio_date(datetime.now(UTC))
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "status": "in-progress",
            "direction": "inbound",
            "from": self.caller,
            "from_formatted": self.caller,
            "to": self.callee,
            "to_formatted": self.callee,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "end_time": None,
            "duration": None,
            "price": None,
            "price_unit": "USD",
            "answered_by": None,
            "caller_name": None,
            "forwarded_from": None,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "queue_time": "0",
            "trunk_sid": None,
            "annotation": None,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}.json",
            "subresource_uris": {},
        }

    def _update_call(self, sid: str, form: dict[str, str], path: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            call = self.calls.get(sid)
            if call is None:
                if self._restrict_calls:
                    return _not_found(path)
                call = self.calls[sid] = self._new_call(sid)
            status = form.get("Status")
            redirect = "Twiml" in form or "Url" in form
            if status is None and not redirect:
                return _error(400, 21218, "Invalid ApplicationSid or missing Url/Twiml/Status")
            if call["status"] in _CALL_END_STATUSES:
                return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
            now = datetime.now(UTC)
            if status in ("completed", "canceled"):
                call["status"] = status
                call["end_time"] = _twilio_date(now)
            elif status is not None:
                return _error(400, 21218, f"Invalid Status: {status}")
            if "Twiml" in form:
                call["twiml"] = form["Twiml"]
            if "Url" in form:
                call["url"] = form["Url"]
            call["date_updated"] = _twilio_date(now)
            return 200, {k: v for k, v in call.items() if k not in ("twiml", "url")}

    def _create_message(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to = form.get("To", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
            return _error(400, 21602, "Message body is required.")
        from_ = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        if from_ is None and service is None:
            return _error(400, 21603, "A 'From' phone number is required.")
        sid = new_sid("SM")
        now = _twilio_date(datetime.now(UTC))
        body = form.get("Body", "")
        message = {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "to": to,
            "from": from_,
            "messaging_service_sid": service,
            "body": body,
            "status": "queued" if from_ else "accepted",
            "direction": "outbound-api",
            "num_segments": str(max(1, -(-len(body) // 160))),
            "num_media": "0",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
        }
        with self._lock:
            self.messages.append(message)
        return 201, message


def _error(status: int, code: int | None, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
        "status": status,
    }


def _not_found(path: str) -> tuple[int, dict[str, Any]]:
    return _error(404, 20404, f"The requested resource {path} was not found")
