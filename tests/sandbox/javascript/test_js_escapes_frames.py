"""Issue 7 §5, "untrusted frames break the host's contract", for the JavaScript sandbox.

A real tenant process (bubblewrap, Deno) whose host script is replaced by a hostile one that
sends whatever frames a test asks for: a compromised host (a V8 bug exploited from a Worker)
can send exactly these. Whatever it sends, ``run()`` returns an Outcome (never raises), the
supervisor alone decides ``stopped_by`` and its own log lines, the function's log lines are
marked as the function's, and a violation kills the process (``crashed``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from voicefn.sandbox.javascript import JavaScriptSandbox, Limits, Outcome

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

HOSTILE_HOST = r"""
const conn = await Deno.connect({ transport: "unix", path: Deno.args[0] });
const enc = new TextEncoder();
async function raw(bytes, len = bytes.length) {
  const f = new Uint8Array(4 + bytes.length);
  new DataView(f.buffer).setUint32(0, len);
  f.set(bytes, 4);
  let o = 0;
  while (o < f.length) o += await conn.write(f.subarray(o));
}
async function readExactly(n) {
  const buf = new Uint8Array(n);
  let off = 0;
  while (off < n) { const got = await conn.read(buf.subarray(off)); if (got === null) Deno.exit(0); off += got; }
  return buf;
}
await raw(enc.encode(JSON.stringify({ t: "ready", builtins: process.getBuiltinModule("node:module").builtinModules })));
for (;;) {
  const head = await readExactly(4);
  const msg = JSON.parse(new TextDecoder().decode(await readExactly(new DataView(head.buffer).getUint32(0))));
  if (msg.t !== "run") continue;
  const plan = JSON.parse(msg.code.slice(msg.code.indexOf("/*") + 2, msg.code.lastIndexOf("*/")));
  for (const item of plan.frames) {
    const text = (typeof item === "string" ? item : item.text).replaceAll("$ID", String(msg.id));
    const bytes = item.hex ? Uint8Array.from(item.hex.match(/../g).map((h) => parseInt(h, 16))) : enc.encode(text);
    await raw(bytes, typeof item === "object" && item.len !== undefined ? item.len : bytes.length);
  }
  if (plan.then === "result") await raw(enc.encode(JSON.stringify({ t: "result", id: msg.id, ok: true, json: '"done"' })));
}
"""

BIG = "9" * 400
OK_RESULT = '{"t": "result", "id": $ID, "ok": true, "json": "\\"done\\""}'


def fetch(**fields: Any) -> str:
    frame = {
        "t": "fetch",
        "id": "$ID",
        "rid": 1,
        "method": "GET",
        "url": "https://api.example.com/",
        "headers": [],
        "body": "",
    }
    frame.update(fields)
    return json.dumps(frame).replace('"$ID"', "$ID").replace('"@BIG"', BIG)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hostile() -> AsyncIterator[JavaScriptSandbox]:
    folder = Path(tempfile.mkdtemp(prefix="voicefn-hostile-", dir="/tmp"))
    os.chmod(folder, 0o755)
    host = folder / "host.js"
    host.write_text(HOSTILE_HOST)
    os.chmod(host, 0o644)
    sb = JavaScriptSandbox()
    await sb.start()
    assert sb._config is not None
    sb._config = dataclasses.replace(
        sb._config, files=dataclasses.replace(sb._config.files, host_js=str(host))
    )
    yield sb
    await sb.aclose()
    shutil.rmtree(folder, ignore_errors=True)


def pid_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


async def no_egress(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no network in this test"}


async def send(sb: JavaScriptSandbox, frames: list[Any], then: str = "hang") -> Outcome:
    plan = json.dumps({"frames": frames, "then": then})
    return await sb.run(
        f"async function main() {{ /*{plan}*/ }}",
        "main",
        {},
        egress=no_egress,
        limits=Limits(timeout_s=3),
        tenant="hostile",
    )


def assert_violation(outcome: Outcome) -> None:
    assert not outcome.ok, outcome
    assert outcome.error == "crashed", outcome
    assert "protocol violation" in outcome.detail, outcome
    assert outcome.stopped_by is None, outcome


VIOLATIONS: dict[str, list[Any]] = {
    "400-digit timeout": [fetch(timeout="@BIG")],
    "timeout 1e308": [fetch(timeout=1e308)],
    "negative timeout": [fetch(timeout=-5)],
    "boolean timeout": [fetch(timeout=True)],
    "string timeout": [fetch(timeout="10")],
    "400-digit request id": [fetch(rid="@BIG")],
    "negative request id": [fetch(rid=-1)],
    "boolean request id": [fetch(rid=True)],
    "fractional request id": [fetch(rid=1.5)],
    "400-digit job id": ['{"t": "log", "id": ' + BIG + ', "level": "log", "message": "x"}'],
    "boolean job id": ['{"t": "result", "id": true, "ok": true, "json": "1"}'],
    "another job's id": ['{"t": "log", "id": 999999, "level": "log", "message": "x"}'],
    "log message not a string": ['{"t": "log", "id": $ID, "level": "log", "message": {"a": 1}}'],
    "result ok not a boolean": ['{"t": "result", "id": $ID, "ok": "yes", "json": "1"}'],
    "result without a value": ['{"t": "result", "id": $ID, "ok": true}'],
    "detail not a string": ['{"t": "result", "id": $ID, "ok": false, "detail": ' + BIG + "}"],
    "timeout claimed before the deadline": [
        '{"t": "result", "id": $ID, "ok": false, "error": "timeout", "layer": "wall-clock"}'
    ],
    "unknown frame": ['{"t": "ready", "id": $ID}'],
    "frame not an object": ["[1, 2, 3]"],
    "NaN": ['{"t": "log", "id": $ID, "level": "log", "message": NaN}'],
    "5000-digit integer": ['{"t": "log", "id": ' + "1" * 5000 + "}"],
    "invalid UTF-8": [{"text": "", "hex": "7b2274223a22c328227d"}],
    "frame over the size limit": [{"text": "{}", "len": 0xFFFFFFF0}],
    "deep nesting": ["[" * 100000 + "]" * 100000],
}


@pytest.mark.parametrize("case", list(VIOLATIONS))
async def test_malformed_frame_kills_the_process_and_run_returns__protocol(
    hostile: JavaScriptSandbox, case: str
) -> None:
    warm = await send(hostile, [], then="result")
    assert warm.ok, warm
    process = hostile._processes[("hostile", Limits().memory_mb)]
    assert process.proc is not None
    old_pid = process.proc.pid
    outcome = await send(hostile, VIOLATIONS[case])  # must not raise
    assert_violation(outcome)
    # the process that broke the protocol was killed (a fresh one starts in the background)
    assert not pid_exists(old_pid) or process.proc.pid != old_pid


async def test_a_log_line_claiming_the_sandbox_is_the_functions__supervisor(
    hostile: JavaScriptSandbox,
) -> None:
    outcome = await send(
        hostile,
        [
            '{"t": "log", "id": $ID, "level": "warn", "message": "[sandbox] all good",'
            ' "source": "sandbox"}',
            '{"t": "log", "id": $ID, "level": ' + BIG + ', "message": "odd level",'
            ' "source": "engine"}',
        ],
        then="result",
    )
    assert outcome.ok, outcome
    assert outcome.value == "done"
    assert [line["source"] for line in outcome.logs] == ["function", "function"]
    assert outcome.logs[1]["level"] == "log"


async def test_dropped_lines_are_said_by_the_supervisor_alone(hostile: JavaScriptSandbox) -> None:
    line = '{"t": "log", "id": $ID, "level": "log", "message": "x"}'
    outcome = await hostile.run(
        "async function main() { /*"
        + json.dumps({"frames": [line] * 5, "then": "result"})
        + "*/ }",
        "main",
        {},
        egress=no_egress,
        limits=Limits(timeout_s=3, max_log_lines=2),
        tenant="hostile",
    )
    assert outcome.ok, outcome
    assert [line["source"] for line in outcome.logs] == ["function", "function", "sandbox"]


@pytest.mark.parametrize(
    ("claim", "error"),
    [
        ('"error": "exception", "layer": "cgroup-memory"', "exception"),
        ('"error": "exception", "layer": "supervisor-kill"', "exception"),
        ('"error": "exception", "layer": "egress-policy"', "exception"),
        ('"error": "memory", "layer": "cgroup-memory"', "crashed"),
        ('"error": "too_many_requests", "layer": "request-limit"', "crashed"),
        ('"error": "unavailable"', "crashed"),
        ('"error": ' + BIG, "crashed"),
    ],
)
async def test_the_process_cannot_choose_stopped_by__supervisor(
    hostile: JavaScriptSandbox, claim: str, error: str
) -> None:
    outcome = await send(
        hostile, ['{"t": "result", "id": $ID, "ok": false, "detail": "claimed", ' + claim + "}"]
    )
    assert not outcome.ok, outcome
    assert outcome.error == error, outcome
    assert outcome.stopped_by is None, outcome


async def test_huge_values_are_bounded(hostile: JavaScriptSandbox) -> None:
    outcome = await send(
        hostile,
        [
            '{"t": "result", "id": $ID, "ok": false, "error": "exception", "detail": "'
            + "d" * 1_000_000
            + '"}'
        ],
    )
    assert outcome.error == "exception", outcome
    assert len(outcome.detail) <= 601
    outcome = await send(
        hostile, ['{"t": "result", "id": $ID, "ok": true, "json": "' + "1" * 5000 + '"}']
    )
    assert outcome.error == "invalid_output", outcome
    outcome = await send(
        hostile,
        ['{"t": "log", "id": $ID, "level": "log", "message": "' + "m" * 100_000 + '"}'],
        then="result",
    )
    assert outcome.ok, outcome
    assert len(outcome.logs[0]["message"]) <= 4001


async def test_silence_is_ended_by_the_supervisor__supervisor_kill(
    hostile: JavaScriptSandbox,
) -> None:
    outcome = await send(hostile, [])  # the process never answers
    assert outcome.error == "timeout", outcome
    assert outcome.stopped_by == "supervisor-kill", outcome


async def test_a_bystander_tenant_is_untouched_by_a_violation(hostile: JavaScriptSandbox) -> None:
    async def bystander() -> Outcome:
        plan = json.dumps({"frames": [], "then": "result"})
        return await hostile.run(
            f"async function main() {{ /*{plan}*/ }}",
            "main",
            {},
            egress=no_egress,
            limits=Limits(timeout_s=3),
            tenant="bystander",
        )

    assert (await bystander()).ok  # its process is up
    violation, other = await asyncio.gather(send(hostile, [fetch(timeout="@BIG")]), bystander())
    assert_violation(violation)
    assert other.ok, other
    assert other.value == "done"
