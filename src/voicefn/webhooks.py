"""Signed webhooks: what voicefn sends, and verifying what a receiver got.

Every webhook voicefn sends (the agent webhook's execution record, pre-call webhooks, post-call
HTTP functions that ask for it) is signed per `Standard Webhooks
<https://www.standardwebhooks.com/>`_::

    webhook-id: job_0661d1e6...            (the same on every retry: deduplicate on it)
    webhook-timestamp: 1765432100          (UNIX seconds of this attempt)
    webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>

The key is a ``whsec_<base64>`` secret (the workspace's, or one agent's), shown when it is made
(``POST /v1/signing-keys``) and stored encrypted. During a rotation every key still valid signs,
so ``webhook-signature`` holds several space-separated signatures and a receiver that knows
either secret accepts the request.

A receiver (FastAPI; Flask is the same with ``request.get_data()``)::

    from voicefn.webhooks import WebhookVerificationError, verify

    @app.post("/voicefn")
    async def hook(request: Request) -> Response:
        body = await request.body()                  # the raw bytes, never re-serialised JSON
        try:
            verify(request.headers, body, os.environ["VOICEFN_WEBHOOK_SECRET"])
        except WebhookVerificationError:
            return Response(status_code=401)
        ...                                          # then deduplicate on webhook-id

The other platforms' signatures, so a voicefn service can receive their events too:
:func:`verify_retell` (``X-Retell-Signature``), :func:`verify_vapi` (Vapi's HMAC credential, or
its secret-token header) and :func:`verify_elevenlabs` (``ElevenLabs-Signature``).

Only the standard library and ``standardwebhooks`` (imported when first signing or verifying).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets as _secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "SECRET_PREFIX",
    "VapiHmac",
    "WebhookVerificationError",
    "new_secret",
    "sign",
    "signature_headers",
    "verify",
    "verify_elevenlabs",
    "verify_retell",
    "verify_vapi",
]

SECRET_PREFIX = "whsec_"
_RETELL = re.compile(r"v=(\d+),d=([0-9a-f]{64})")
#: How far a Standard Webhooks timestamp may be from the receiver's clock (the spec's 5 minutes).
TOLERANCE_S = 300.0


class WebhookVerificationError(Exception):
    """The request is not what the secret's owner sent: a header is missing or malformed, the
    timestamp is too far from now, or no signature matches."""


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def _secrets_of(secret: str | Sequence[str]) -> list[str]:
    values = [secret] if isinstance(secret, str) else list(secret)
    if not values or not all(values):
        raise ValueError("no signing secret given")
    return values


def _body(body: bytes | bytearray | memoryview | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def sign(
    msg_id: str,
    timestamp: int,
    body: bytes | str,
    secret: str | Sequence[str],
) -> str:
    """The ``webhook-signature`` value: ``v1,<signature>`` for each secret, space-separated."""
    from standardwebhooks import Webhook

    at = datetime.fromtimestamp(timestamp, tz=UTC)
    data = _body(body)
    return " ".join(Webhook(s).sign(msg_id, at, data) for s in _secrets_of(secret))


def signature_headers(
    msg_id: str,
    body: bytes | str,
    secret: str | Sequence[str],
    *,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The three Standard Webhooks headers for sending ``body`` now (or at ``timestamp``)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(msg_id, ts, body, secret),
    }


def _lower(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k).lower(): str(v) for k, v in items}


def verify(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes | str,
    secret: str | Sequence[str],
    *,
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a Standard Webhooks request: raises :class:`WebhookVerificationError` unless one of
    its signatures was made with ``secret`` (or any of several secrets, while a receiver rotates)
    over exactly ``body``, and its timestamp is within ``tolerance_s`` of now."""
    h = _lower(headers)
    msg_id = h.get("webhook-id")
    stamp = h.get("webhook-timestamp")
    given = h.get("webhook-signature")
    if not (msg_id and stamp and given):
        raise WebhookVerificationError(
            "missing webhook-id, webhook-timestamp or webhook-signature header"
        )
    if not stamp.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not a number of seconds")
    ts = int(stamp)
    clock = time.time() if now is None else now
    if abs(clock - ts) > tolerance_s:
        raise WebhookVerificationError(
            "webhook-timestamp is too old" if ts < clock else "webhook-timestamp is in the future"
        )
    passed = [p.encode() for p in given.split(" ") if p]
    try:
        expected = [sign(msg_id, ts, body, s).encode() for s in _secrets_of(secret)]
    except (ValueError, TypeError) as exc:  # not base64: a secret of some other kind
        raise WebhookVerificationError(f"the secret cannot be used: {exc}") from None
    if not any(hmac.compare_digest(e, p) for e in expected for p in passed):
        raise WebhookVerificationError("no signature matches")


# ---------------------------------------------------------------------- other platforms


def verify_retell(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes | str,
    api_key: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> None:
    """Retell AI: ``X-Retell-Signature: v=<unix ms>,d=<hex HMAC-SHA256(api_key, body + ms)>``,
    signed with the API key that has the webhook badge; within 5 minutes of now (Retell's SDKs:
    ``Retell.verify(body, api_key, signature)``)."""
    h = _lower(headers)
    match = _RETELL.fullmatch(h.get("x-retell-signature", "").strip())
    if match is None:
        raise WebhookVerificationError("missing or malformed X-Retell-Signature header")
    stamp, digest = match.group(1), match.group(2)
    clock_ms = (time.time() if now is None else now) * 1000
    if abs(clock_ms - int(stamp)) > tolerance_s * 1000:
        raise WebhookVerificationError("X-Retell-Signature's timestamp is outside the tolerance")
    mac = hmac.new(api_key.encode(), _body(body) + stamp.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, digest):
        raise WebhookVerificationError("X-Retell-Signature does not match")


def verify_elevenlabs(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes | str,
    secret: str,
    *,
    tolerance_s: float = 1800.0,
    now: float | None = None,
) -> None:
    """ElevenLabs (post-call webhooks): ``ElevenLabs-Signature: t=<unix s>,v0=<hex
    HMAC-SHA256(secret, f"{t}.{body}")>``; no older than 30 minutes (as its SDKs'
    ``webhooks.construct_event``)."""
    h = _lower(headers)
    value = h.get("elevenlabs-signature", "")
    stamp = ""
    given: list[str] = []
    for part in value.split(","):
        part = part.strip()
        if part.startswith("t="):
            stamp = part[2:]
        elif part.startswith("v0="):
            given.append(part[3:])
    if not stamp.isdigit() or not given:
        raise WebhookVerificationError("missing or malformed ElevenLabs-Signature header")
    clock = time.time() if now is None else now
    if int(stamp) < clock - tolerance_s:
        raise WebhookVerificationError("ElevenLabs-Signature's timestamp is too old")
    message = stamp.encode() + b"." + _body(body)
    mac = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(mac, g) for g in given):
        raise WebhookVerificationError("ElevenLabs-Signature does not match")


@dataclass(frozen=True, slots=True)
class VapiHmac:
    """Vapi's HMAC credential (``HMACAuthenticationPlan``), with its documented defaults: set
    these to what the credential in Vapi's dashboard says."""

    algorithm: str = "sha256"  #: sha256, sha512 or sha1
    signature_header: str = "x-signature"
    timestamp_header: str = "x-timestamp"
    signature_prefix: str = ""  #: e.g. "sha256="
    include_timestamp: bool = True
    #: ``{body}``, ``{timestamp}``, ``{method}``, ``{url}`` and ``{svix-id}`` are replaced
    payload_format: str = "{timestamp}.{body}"
    message_id_header: str = ""
    signature_encoding: str = "hex"  #: hex or base64
    secret_is_base64: bool = False


def verify_vapi(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes | str,
    secret: str,
    *,
    plan: VapiHmac | None = None,
    method: str = "POST",
    url: str = "",
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> None:
    """Vapi's server messages. With ``plan`` (an HMAC credential): the signature over its
    payload format. Without: the secret-token form, ``X-Vapi-Secret`` (or, in older
    configurations, ``X-Vapi-Signature``) carrying the secret itself."""
    h = _lower(headers)
    if plan is None:
        token = h.get("x-vapi-secret") or h.get("x-vapi-signature")
        if not token:
            raise WebhookVerificationError("missing X-Vapi-Secret header")
        if not hmac.compare_digest(token.encode(), secret.encode()):
            raise WebhookVerificationError("X-Vapi-Secret does not match")
        return
    given = h.get(plan.signature_header.lower())
    if not given:
        raise WebhookVerificationError(f"missing {plan.signature_header} header")
    stamp = h.get(plan.timestamp_header.lower(), "")
    if plan.include_timestamp:
        if not stamp.isdigit():
            raise WebhookVerificationError(f"missing or malformed {plan.timestamp_header} header")
        seconds = int(stamp) / 1000 if len(stamp) > 11 else int(stamp)  # ms or s
        if abs((time.time() if now is None else now) - seconds) > tolerance_s:
            raise WebhookVerificationError(f"{plan.timestamp_header} is outside the tolerance")
    text = _body(body).decode("utf-8", "surrogateescape")
    message = (
        plan.payload_format.replace("{timestamp}", stamp)
        .replace("{method}", method)
        .replace("{url}", url)
        .replace("{svix-id}", h.get(plan.message_id_header.lower(), ""))
        .replace("{body}", text)
        if plan.include_timestamp or "{timestamp}" not in plan.payload_format
        else text
    )
    key = base64.b64decode(secret) if plan.secret_is_base64 else secret.encode()
    try:
        digest = hmac.new(key, message.encode("utf-8", "surrogateescape"), plan.algorithm).digest()
    except ValueError as exc:
        raise WebhookVerificationError(f"unsupported algorithm {plan.algorithm!r}") from exc
    encoded = (
        base64.b64encode(digest).decode() if plan.signature_encoding == "base64" else digest.hex()
    )
    if not hmac.compare_digest(plan.signature_prefix + encoded, given.strip()):
        raise WebhookVerificationError(f"{plan.signature_header} does not match")
