"""Reporting a finished call to a voicefn service never raises: whatever answers (a proxy's
HTML page, JSON that is not the calls endpoint's, a URL httpx cannot use) is a receipt with the
reason. Real loopback servers answer; the successful path is tested against a real
``voicefn serve`` in tests/integrations/test_pipecat_postcall.py."""

from __future__ import annotations

import time

import pytest

from voicefn.runtime.platform_report import PlatformTarget, report_call
from voicefn.runtime.postcall import FinishedCall

from servers import RawRequest, raw_response, running_raw_server

CALL = FinishedCall(
    execution_id="exec-1",
    call_sid="CA-report-1",
    started_at=time.time() - 30,
    ended_at=time.time(),
    transcript=[{"role": "caller", "text": "hi"}, {"role": "agent", "text": "hello"}],
)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Welcome to the hotel wifi</body></html>", "text/html"),
        (b"[1, 2, 3]", "application/json"),
        (b'{"ok": true}', "application/json"),
    ],
)
async def test_a_202_that_is_not_the_calls_endpoint_is_a_failed_receipt(
    body: bytes, content_type: str
) -> None:
    def answer(request: RawRequest) -> bytes:
        return raw_response(body, status=202, headers={"Content-Type": content_type})

    with running_raw_server(answer) as server:
        target = PlatformTarget(server.url, "key", "agent_1", attempts=1)
        receipt = await report_call(target, CALL)
        [request] = server.requests
    assert request.target == "/v1/agents/agent_1/calls"
    assert not receipt.ok
    assert receipt.status == 202
    assert receipt.error is not None
    assert f"(202, {content_type})" in receipt.error
    assert "base URL" in receipt.error


async def test_a_url_httpx_cannot_use_is_a_failed_receipt() -> None:
    target = PlatformTarget("http://[::1", "key", "agent_1", attempts=1)
    receipt = await report_call(target, CALL)
    assert not receipt.ok
    assert receipt.status is None
    assert receipt.error is not None
    assert "URL" in receipt.error
