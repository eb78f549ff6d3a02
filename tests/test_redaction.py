"""Keeping secrets out of what is recorded and shown: URLs, header names, known values."""

from __future__ import annotations

import pytest

from voicefn.egress import EgressDenied, EgressPolicy
from voicefn.redaction import Redactor, is_sensitive_header, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://u:pw@api.example/v1?api_key=K1&key=K2&token=K3&city=Pune&sig=K4",
            "https://api.example/v1?api_key=[redacted]&key=[redacted]&token=[redacted]"
            "&city=Pune&sig=[redacted]",
        ),
        ("https://api.example/v1?city=P%C3%BCne", "https://api.example/v1?city=P%C3%BCne"),
        (
            "https://api.example/v1?X-Amz-Signature=abc&a=1",
            "https://api.example/v1?X-Amz-Signature=[redacted]&a=1",
        ),
        ("https://api.example/v1", "https://api.example/v1"),
        # cannot be parsed: what comes before the query, without user:password
        ("http://u:pw@[::1/orders?token=T", "http://[::1/orders?[redacted]"),
        ("http://[::1/orders", "http://[::1/orders"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_an_invalid_url_refused_by_the_egress_policy_does_not_show_its_secrets() -> None:
    with pytest.raises(EgressDenied) as refused:
        EgressPolicy().check_url("http://admin:hunter2@[::1/x?api_key=sk_live_9")
    message = str(refused.value)
    assert "is not a valid URL" in message
    assert "hunter2" not in message
    assert "sk_live_9" not in message


def test_sensitive_header_names() -> None:
    for name in ("Authorization", "X-Api-Key", "apikey", "Cookie", "X-Auth-Token", "X-Signature"):
        assert is_sensitive_header(name), name
    for name in ("Content-Type", "Idempotency-Key", "Accept"):
        assert not is_sensitive_header(name), name


def test_known_secret_values_are_replaced_wherever_they_appear() -> None:
    redactor = Redactor(["Bearer abcd1234", "xyz"])  # too short to redact safely: kept
    assert redactor.text("sent Bearer abcd1234, echoed abcd1234; xyz") == (
        "sent [redacted], echoed [redacted]; xyz"
    )
