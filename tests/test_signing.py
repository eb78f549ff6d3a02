"""voicefn.webhooks: Standard Webhooks signing and verifying (the specification's test vector,
rotation, tolerance, tampering), and the Retell, Vapi and ElevenLabs verifiers (their SDKs'
published vectors where there is one)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from voicefn.webhooks import (
    VapiHmac,
    WebhookVerificationError,
    new_secret,
    sign,
    signature_headers,
    verify,
    verify_elevenlabs,
    verify_retell,
    verify_vapi,
)

# The Standard Webhooks specification's test vector (also Svix's).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _vector_headers(signature: str = VECTOR_SIGNATURE) -> dict[str, str]:
    return {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": signature,
    }


def test_the_specifications_test_vector() -> None:
    assert sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY, VECTOR_SECRET) == VECTOR_SIGNATURE
    verify(_vector_headers(), VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS)
    verify(_vector_headers(), VECTOR_BODY.decode(), VECTOR_SECRET, now=VECTOR_TS + 299)
    # the bare base64 secret (no whsec_ prefix) is the same key
    verify(_vector_headers(), VECTOR_BODY, VECTOR_SECRET.removeprefix("whsec_"), now=VECTOR_TS)


def _case(
    why: str,
    headers: dict[str, str] | None = None,
    body: bytes = VECTOR_BODY,
    secret: str = VECTOR_SECRET,
    now: int = VECTOR_TS,
) -> tuple[str, dict[str, str], bytes, str, int]:
    return (why, headers or {}, body, secret, now)


@pytest.mark.parametrize(
    ("why", "headers", "body", "secret", "now"),
    [
        _case("no signature matches", body=VECTOR_BODY + b" "),
        _case("no signature matches", secret=new_secret()),
        _case("too old", now=VECTOR_TS + 301),
        _case("in the future", now=VECTOR_TS - 301),
        _case("no signature matches", {"webhook-id": "msg_other"}),
        _case("no signature matches", {"webhook-timestamp": str(VECTOR_TS + 1)}),
        _case("not a number", {"webhook-timestamp": "16142653.30"}),
        _case("no signature matches", {"webhook-signature": "v1,AAAA"}),
        _case("no signature", {"webhook-signature": VECTOR_SIGNATURE.replace("v1", "v2")}),
        _case("missing", {"webhook-signature": ""}),
        _case("missing", {"webhook-id": ""}),
    ],
)
def test_what_does_not_verify(
    why: str, headers: dict[str, str], body: bytes, secret: str, now: int
) -> None:
    sent = {**_vector_headers(), **headers}
    with pytest.raises(WebhookVerificationError, match=why):
        verify(sent, body, secret, now=now)


def test_several_signatures_during_a_rotation() -> None:
    old, new = new_secret(), new_secret()
    body = json.dumps({"call_id": "CA1", "status": "completed"}).encode()
    headers = signature_headers("job_1", body, [new, old])
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    verify(headers, body, old)  # a receiver still on the old secret
    verify(headers, body, new)  # one already on the new
    verify(headers, body, [new_secret(), old])  # one that accepts either
    with pytest.raises(WebhookVerificationError):
        verify(headers, body, new_secret())


def test_the_standardwebhooks_library_verifies_what_voicefn_signs() -> None:
    secret = new_secret()
    body = b'{"status":"completed","transcript":[{"role":"caller","text":"ciao \xc3\xa8"}]}'
    headers = signature_headers("job_abc", body, secret)
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    ours = Webhook(secret).sign("job_abc", datetime.now(tz=UTC), body)
    assert ours == sign("job_abc", int(headers["webhook-timestamp"]), body, secret)


def test_headers_in_any_case_and_as_pairs() -> None:
    headers = {k.upper(): v for k, v in _vector_headers().items()}
    verify(headers, VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS)
    verify(list(_vector_headers().items()), VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS)


def test_new_secrets_are_32_random_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(base64.b64decode(a.removeprefix("whsec_"))) == 32


def test_a_secret_that_is_not_base64_is_refused_not_crashed() -> None:
    with pytest.raises(WebhookVerificationError, match="cannot be used"):
        verify(_vector_headers(), VECTOR_BODY, "whsec_not base64!", now=VECTOR_TS)


# ---------------------------------------------------------------------- Retell

# Retell's Python SDK tests (tests/test_webhook_auth.py): HMAC-SHA256(api_key, body + ms).
RETELL_BODY = '{"event":"call_ended"}'
RETELL_KEY = "test-api-key"
RETELL_TS = 1_700_000_000_000
RETELL_DIGEST = "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"


def test_retell_published_vector_and_tolerance() -> None:
    header = {"X-Retell-Signature": f"v={RETELL_TS},d={RETELL_DIGEST}"}
    verify_retell(header, RETELL_BODY, RETELL_KEY, now=RETELL_TS / 1000)
    verify_retell(header, RETELL_BODY.encode(), RETELL_KEY, now=RETELL_TS / 1000 + 300)
    verify_retell(header, RETELL_BODY, RETELL_KEY, now=RETELL_TS / 1000 - 300)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_retell(header, RETELL_BODY, RETELL_KEY, now=RETELL_TS / 1000 + 300.001)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_retell(header, RETELL_BODY + " ", RETELL_KEY, now=RETELL_TS / 1000)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_retell(header, RETELL_BODY, "wrong-api-key", now=RETELL_TS / 1000)


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"v={RETELL_TS}",
        f"d={RETELL_DIGEST},v={RETELL_TS}",
        f"prefix-v={RETELL_TS},d={RETELL_DIGEST}",
        f"v={RETELL_TS},d={RETELL_DIGEST}-suffix",
        f"v={RETELL_TS},d=not-hex",
        f"v={RETELL_TS},d={RETELL_DIGEST[2:]}",
        f"v=-{RETELL_TS},d={RETELL_DIGEST}",
        f"v={RETELL_TS},d={RETELL_DIGEST},extra=value",
    ],
)
def test_retell_malformed_signatures(value: str) -> None:
    with pytest.raises(WebhookVerificationError, match="malformed"):
        verify_retell({"x-retell-signature": value}, RETELL_BODY, RETELL_KEY, now=RETELL_TS / 1000)


# ---------------------------------------------------------------------- ElevenLabs


def _elevenlabs(body: str, secret: str, ts: int) -> str:
    # As ElevenLabs' SDKs compute it (webhooks.construct_event).
    mac = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v0={mac}"


def test_elevenlabs_signature_and_its_30_minute_window() -> None:
    body = json.dumps({"type": "post_call_transcription", "data": {"conversation_id": "c1"}})
    now = 1_700_000_000
    header = {"ElevenLabs-Signature": _elevenlabs(body, "wsec_test", now - 29 * 60)}
    verify_elevenlabs(header, body, "wsec_test", now=now)
    stale = {"ElevenLabs-Signature": _elevenlabs(body, "wsec_test", now - 31 * 60)}
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_elevenlabs(stale, body, "wsec_test", now=now)
    for bad in (body + " ", body.replace("c1", "c2")):
        with pytest.raises(WebhookVerificationError, match="does not match"):
            verify_elevenlabs(header, bad, "wsec_test", now=now)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_elevenlabs(header, body, "other", now=now)
    for malformed in ("", "invalid_format", f"t={now}", "v0=abc"):
        with pytest.raises(WebhookVerificationError, match="malformed"):
            verify_elevenlabs({"elevenlabs-signature": malformed}, body, "wsec_test", now=now)


# ---------------------------------------------------------------------- Vapi


def test_vapi_secret_token() -> None:
    verify_vapi({"X-Vapi-Secret": "s3cret-token"}, b"{}", "s3cret-token")
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_vapi({"x-vapi-secret": "guess"}, b"{}", "s3cret-token")
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_vapi({}, b"{}", "s3cret-token")


def test_vapi_hmac_credential_with_its_defaults_and_custom_settings() -> None:
    body = '{"message":{"type":"end-of-call-report","call":{"id":"c1"}}}'
    now = time.time()
    ts = str(int(now * 1000))
    mac = hmac.new(b"vapi-key", f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    headers = {"x-signature": mac, "x-timestamp": ts}
    verify_vapi(headers, body, "vapi-key", plan=VapiHmac(), now=now)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_vapi(headers, body + " ", "vapi-key", plan=VapiHmac(), now=now)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_vapi(headers, body, "vapi-key", plan=VapiHmac(), now=now + 3600)
    # GitHub style: a prefix, the body alone, base64, a base64 secret, another header
    key = base64.b64encode(b"raw key bytes").decode()
    digest = hmac.new(b"raw key bytes", body.encode(), hashlib.sha512).digest()
    plan = VapiHmac(
        algorithm="sha512",
        signature_header="X-Hub-Signature",
        signature_prefix="sha512=",
        include_timestamp=False,
        payload_format="{body}",
        signature_encoding="base64",
        secret_is_base64=True,
    )
    github = {"X-Hub-Signature": "sha512=" + base64.b64encode(digest).decode()}
    verify_vapi(github, body, key, plan=plan)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_vapi({"X-Hub-Signature": "sha512=" + digest.hex()}, body, key, plan=plan)
