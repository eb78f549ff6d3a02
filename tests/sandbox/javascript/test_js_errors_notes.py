"""The two forms of a failed request (``voicefn.sandbox.http_failure``), from ``Outcome.http``
records as both sandboxes write them: which request is named, and what an LLM may read."""

from __future__ import annotations

from typing import Any

import pytest

from voicefn.sandbox.http_failure import engine_note, failed_request, llm_summary, redacted_url

DENIED = {"method": "GET", "url": "http://10.0.0.5/", "error": "refused by the egress policy: no"}


def test_redacted_url_hides_credentials_and_secret_query_values() -> None:
    url = "https://u:pw@api.example/v1?api_key=K1&key=K2&token=K3&city=Pune&sig=K4"
    assert redacted_url(url) == (
        "https://api.example/v1?api_key=[redacted]&key=[redacted]&token=[redacted]"
        "&city=Pune&sig=[redacted]"
    )
    assert (
        redacted_url("https://api.example/v1?city=P%C3%BCne")
        == "https://api.example/v1?city=P%C3%BCne"
    )


@pytest.mark.parametrize(
    ("record", "said"),
    [
        (DENIED, "cannot be reached from here (not allowed); trying again will not help"),
        ({"error": "no response within 10 s"}, "did not answer in time"),
        ({"error": "cancelled"}, "did not answer in time"),
        ({}, "did not answer in time"),
        (
            {"error": "too_large: Endpoint returned more than the 1048576 bytes allowed"},
            "too large",
        ),
        ({"error": "not sent: the header name 'a b' is not valid"}, "cannot be sent"),
        ({"error": "connection: Could not connect (refused)"}, "could not be reached; it may"),
        ({"status": 503}, "failed (HTTP 503); it may work if tried again later"),
        ({"status": 404}, "refused the request (HTTP 404)"),
    ],
)
def test_the_llm_reads_what_it_can_act_on(record: dict[str, Any], said: str) -> None:
    text = llm_summary([{"method": "GET", "url": "http://10.0.0.5/", **record}], "timeout")
    assert text is not None
    assert said in text
    assert "10.0.0.5" not in text
    assert "http" not in text.replace("HTTP", "")


def test_only_failures_with_an_exception_or_timeout_name_a_request() -> None:
    assert failed_request([DENIED], "memory") is None
    assert failed_request([DENIED], None) is None
    answered = {"method": "GET", "url": "http://a/", "status": 200}
    assert failed_request([answered], "exception") is None
    # a request still waiting explains a timeout, not an exception
    waiting = {"method": "GET", "url": "http://a/"}
    assert failed_request([waiting], "exception") is None
    assert failed_request([waiting], "timeout") == (waiting, 0)
    # a failure the engine saw comes before one still waiting
    assert failed_request([DENIED, waiting], "timeout") == (DENIED, 0)
    # the record over the request limit has an outcome of its own
    assert failed_request([{"error": "too many requests"}], "exception") is None


def test_the_note_for_an_answer_names_the_status() -> None:
    note = engine_note({"method": "PUT", "url": "http://a/x?secret=1", "status": 418})
    assert note == "PUT http://a/x?secret=[redacted] was answered HTTP 418 I'm a Teapot"
