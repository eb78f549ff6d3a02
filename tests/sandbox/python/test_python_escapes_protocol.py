"""Issue 7 §5: frames forged by the child never break the supervisor's contract.

Every field of every message is bounds-checked (numbers finite and in range, strings bounded, no
unknown fields), ``run()`` never raises for anything the child sends, only the supervisor decides
``stopped_by`` and writes ``source: "sandbox"`` log lines, and the child's lines are always the
function's. Layer: ``protocol`` (the supervisor's checks of untrusted frames).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pysandbox_support import HOST, SKIP_REASON, fn, refuse_all

from voicefn.sandbox.python import Limits, Outcome, PythonSandbox

pytestmark = [
    pytest.mark.skipif(not HOST.full, reason=SKIP_REASON),
    pytest.mark.asyncio(loop_scope="module"),
]

QUICK = Limits(timeout_s=8.0, cpu_s=3.0, memory_mb=64)
HTTP = {"t": "http", "id": 1, "method": "GET", "url": "https://example.com/", "headers": []}
HTTP_OK = {**HTTP, "body": "", "timeout": 5.0}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sandbox() -> AsyncIterator[PythonSandbox]:
    sb = PythonSandbox(warm_workers=1)
    await sb.start()
    yield sb
    await sb.aclose()


class CountingEgress:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        return {"status": 200, "headers": [], "body": ""}


def forge(*raw_frames: str, then: str = "import time\ntime.sleep(5)") -> str:
    """A function that writes ``raw_frames`` (JSON text, written as is) to its channel."""
    lines = [
        "import os, struct",
        "def send(text):",
        "    data = text.encode()",
        "    os.write(4, struct.pack('>I', len(data)) + data)",
    ]
    lines += [f"send({frame!r})" for frame in raw_frames]
    lines.append(then)
    lines.append("return {'status': 'late'}")
    return fn("\n".join(lines))


async def run(
    sandbox: PythonSandbox, code: str, tenant: str = "forger", egress: Any = refuse_all
) -> Outcome:
    return await sandbox.run(code, "f", {}, {}, egress=egress, limits=QUICK, tenant=tenant)


def violation(outcome: Outcome) -> None:
    assert not outcome.ok, outcome
    assert outcome.error == "invalid_output", outcome
    assert outcome.stopped_by == "protocol", outcome
    assert outcome.detail.startswith("protocol violation"), outcome.detail
    assert outcome.timings["total_ms"] < 4000  # ended at the frame, not by the 5 s sleep


def j(msg: dict[str, Any]) -> str:
    return json.dumps(msg)


BIG = "1" + "0" * 399  # a 400-digit integer, as JSON text


@pytest.mark.parametrize(
    "frame",
    [
        j(HTTP_OK).replace('"timeout": 5.0', f'"timeout": {BIG}'),  # the issue's own
        j(HTTP_OK).replace('"timeout": 5.0', '"timeout": -' + BIG),
        j(HTTP_OK).replace('"timeout": 5.0', '"timeout": 1e999'),  # parses as inf
        j(HTTP_OK).replace('"timeout": 5.0', '"timeout": -1'),
        j(HTTP_OK).replace('"timeout": 5.0', '"timeout": 1e7'),
        j(HTTP_OK).replace('"timeout": 5.0', '"timeout": "5"'),
        j(HTTP_OK).replace('"timeout": 5.0', '"timeout": true'),
        j(HTTP_OK).replace('"id": 1', f'"id": {BIG}'),
        j(HTTP_OK).replace('"id": 1', '"id": -1'),
        j(HTTP_OK).replace('"id": 1', '"id": 1.5'),
        j(HTTP_OK).replace('"id": 1', '"id": true'),
        j({**HTTP_OK, "id": None}),
        j({**HTTP_OK, "method": "G" * 100}),
        j({**HTTP_OK, "headers": {"a": "b"}}),
        j({**HTTP_OK, "body": 5}),
        j({**HTTP_OK, "url": 5}),
        j({**HTTP_OK, "follow_redirects_to": "http://169.254.169.254/"}),  # unknown field
        j({k: v for k, v in HTTP_OK.items() if k != "body"}),
    ],
    ids=[
        "timeout-400-digits",
        "timeout-minus-400-digits",
        "timeout-inf",
        "timeout-negative",
        "timeout-huge",
        "timeout-string",
        "timeout-bool",
        "id-400-digits",
        "id-negative",
        "id-float",
        "id-bool",
        "id-null",
        "method-long",
        "headers-dict",
        "body-int",
        "url-int",
        "unknown-field",
        "no-body",
    ],
)
async def test_forged_http_frames_end_the_invocation_without_raising(
    sandbox: PythonSandbox, frame: str
) -> None:
    egress = CountingEgress()
    outcome = await run(sandbox, forge(frame), egress=egress)
    violation(outcome)
    assert egress.requests == []  # nothing malformed reaches the egress callback


async def test_a_valid_forged_http_frame_is_just_a_request(sandbox: PythonSandbox) -> None:
    """The same frame with sane fields is an ordinary request (the checks are not too tight)."""
    egress = CountingEgress()
    outcome = await run(
        sandbox, forge(j(HTTP_OK), then="import time\ntime.sleep(0.3)"), egress=egress
    )
    assert outcome.ok, outcome
    assert len(egress.requests) == 1
    assert egress.requests[0]["timeout"] <= 5.0


@pytest.mark.parametrize(
    "frame",
    [
        j({"t": "log", "level": "error", "message": "ENGINE: all good", "source": "sandbox"}),
        j({"t": "log", "level": "info", "message": "x", "source": "stdio"}),
        j({"t": "log", "level": "info", "message": "x", "source": "engine"}),
        j({"t": "log", "level": "info", "message": "x", "source": 5}),
        j({"t": "log", "level": "info", "message": "x"}),  # no source
        j({"t": "log", "level": "fatal", "message": "x", "source": "logger"}),
        j({"t": "log", "level": 40, "message": "x", "source": "logger"}),
        j({"t": "log", "level": "info", "message": {"x": 1}, "source": "logger"}),
        '{"t": "log", "level": "info", "message": ' + BIG + ', "source": "logger"}',
        j({"t": "log", "level": "info", "message": "x" * 70000, "source": "logger"}),
        j({"t": "log", "level": "info", "message": "x", "source": "logger", "time": 0}),
    ],
    ids=[
        "source-sandbox",
        "source-stdio",
        "source-engine",
        "source-int",
        "no-source",
        "level-unknown",
        "level-int",
        "message-dict",
        "message-400-digits",
        "message-70k",
        "unknown-field-time",
    ],
)
async def test_forged_log_frames_are_refused(sandbox: PythonSandbox, frame: str) -> None:
    outcome = await run(sandbox, forge(frame))
    violation(outcome)
    assert [log for log in outcome.logs if log["source"] == "sandbox"] == []
    assert "ENGINE" not in str(outcome.logs)


async def test_the_functions_own_lines_are_always_marked_as_the_functions(
    sandbox: PythonSandbox,
) -> None:
    outcome = await run(
        sandbox,
        fn(
            """
            import sys
            logger.warning("from the logger")
            print("from print")
            print("from stderr", file=sys.stderr)
            for i in range(5):
                logger.info("line %d", i)
            return {"status": "ok"}
            """
        ),
    )
    assert outcome.ok, outcome
    sources = {log["source"] for log in outcome.logs}
    assert sources == {"logger", "print", "stderr"}


async def test_the_log_limit_note_is_the_supervisors(sandbox: PythonSandbox) -> None:
    outcome = await sandbox.run(
        fn("for i in range(50):\n    logger.info('line %d', i)\nreturn {'status': 'ok'}"),
        "f",
        {},
        {},
        egress=refuse_all,
        limits=Limits(max_log_lines=5),
        tenant="logger",
    )
    assert outcome.ok, outcome
    function_lines = [log for log in outcome.logs if log["source"] != "sandbox"]
    notes = [log for log in outcome.logs if log["source"] == "sandbox"]
    assert len(function_lines) == 5
    assert [n["message"] for n in notes] == ["log limit reached: further lines dropped"]


async def test_forged_log_limit_frames_add_one_note_at_most(sandbox: PythonSandbox) -> None:
    frame = j({"t": "log_limit"})
    outcome = await run(sandbox, forge(*[frame] * 20, then="pass"))
    assert outcome.ok, outcome
    assert len([log for log in outcome.logs if log["source"] == "sandbox"]) == 1


@pytest.mark.parametrize(
    ("frame", "stopped_by"),
    [
        # the child may not name a layer: only facts (cause, errno) in a closed vocabulary
        (j({"t": "error", "kind": "exception", "detail": "x", "stopped_by": "wall-clock"}), None),
        (j({"t": "error", "kind": "exception", "detail": "x", "hint": "seccomp"}), None),
        (j({"t": "error", "kind": "timeout", "detail": "x"}), None),
        (j({"t": "error", "kind": "exception", "detail": "x", "cause": "wall-clock"}), None),
        (
            '{"t": "error", "kind": "exception", "detail": "x", "cause": "errno", "errno": '
            + BIG
            + "}",
            None,
        ),
        (j({"t": "error", "kind": "exception", "detail": 5}), None),
        (j({"t": "result", "value": {"status": "ok"}, "stopped_by": "seccomp"}), None),
        (j({"t": "result"}), None),
    ],
    ids=[
        "stopped-by-field",
        "old-hint-field",
        "kind-timeout",
        "cause-unknown",
        "errno-400-digits",
        "detail-int",
        "result-stopped-by",
        "result-no-value",
    ],
)
async def test_forged_error_and_result_frames_are_refused(
    sandbox: PythonSandbox, frame: str, stopped_by: None
) -> None:
    outcome = await run(sandbox, forge(frame))
    violation(outcome)


async def test_a_claimed_egress_refusal_is_not_believed_without_one(
    sandbox: PythonSandbox,
) -> None:
    """``egress-policy`` is the supervisor's word: only when its egress policy refused a request
    of this invocation."""
    frame = j({"t": "error", "kind": "exception", "detail": "EgressRefused: x", "cause": "egress"})
    outcome = await run(sandbox, forge(frame, then="pass"))
    assert outcome.error == "exception", outcome
    assert outcome.stopped_by is None


async def test_errno_facts_become_the_supervisors_layer_names(sandbox: PythonSandbox) -> None:
    frame = j({"t": "error", "kind": "exception", "detail": "x", "cause": "errno", "errno": 1})
    outcome = await run(sandbox, forge(frame, then="pass"))
    assert (outcome.error, outcome.stopped_by) == ("exception", "seccomp")
    other = j({"t": "error", "kind": "exception", "detail": "x", "cause": "errno", "errno": 999})
    unknown = await run(sandbox, forge(other, then="pass"))
    assert (unknown.error, unknown.stopped_by) == ("exception", None)


async def test_a_flood_of_forged_frames_never_raises_and_the_tenant_recovers(
    sandbox: PythonSandbox,
) -> None:
    frames = [
        '{"t": "http", "id": 1, "timeout": ' + BIG + "}",
        '{"t": "log", "level": "info", "message": "x", "source": "logger"}',
        '{"t": "result", "value": {"n": ' + BIG + "}}",
        '{"t": "error"}',
        '{"t": 5}',
    ]
    for frame in frames:
        outcome = await run(sandbox, forge(frame, frame, frame, then="pass"), tenant="flood")
        assert isinstance(outcome, Outcome)
        assert outcome.error in {None, "invalid_output"}, outcome
    after = await run(sandbox, fn("return {'status': 'fine'}"), tenant="flood")
    assert after.ok, after
    other = await run(sandbox, fn("return {'status': 'fine'}"), tenant="bystander")
    assert other.ok, other
