"""Issue 10 §4: jobs of one tenant called back to back (no pause) take pre-warmed Workers from
the tenant process's pool, and still nothing of a job reaches the next: every job gets a Worker
that no earlier job touched (its ``performance.timeOrigin``, set when the Worker was created, is
new each time), and what a job leaves in globals, prototypes, the libraries and the console is
gone for the next one, also when more jobs come than the pool holds, and when a job throws.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from voicefn.sandbox.javascript import JavaScriptSandbox, Limits, Outcome

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

SPARES = 2

# Reads what an earlier job would have left behind, then leaves the same traces itself.
TRACES = """
async function main(data) {
  const seen = {
    global: globalThis.leftBehind ?? null,
    prototype: ({}).leftBehind ?? null,
    axios: axios.defaults.headers.common["X-Left-Behind"] ?? null,
    lodash: typeof _.leftBehind,
    moment: moment.locale(),
    console: console.leftBehind ?? null,
    fetch: fetch.leftBehind ?? null,
  };
  globalThis.leftBehind = data.me;
  Object.prototype.leftBehind = data.me;
  axios.defaults.headers.common["X-Left-Behind"] = data.me;
  _.mixin({ leftBehind: () => data.me });
  moment.defineLocale("left-behind", { parentLocale: "en" });
  console.leftBehind = data.me;
  fetch.leftBehind = data.me;
  if (data.fail) throw new Error(JSON.stringify({ seen, origin: performance.timeOrigin }));
  return { seen, origin: performance.timeOrigin };
}
"""
CLEAN = {
    "global": None,
    "prototype": None,
    "axios": None,
    "lodash": "undefined",
    "moment": "en",
    "console": None,
    "fetch": None,
}


async def no_egress(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no network in this test"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[JavaScriptSandbox]:
    sb = JavaScriptSandbox(spare_workers=SPARES)
    await sb.start()
    yield sb
    await sb.aclose()


async def job(sb: JavaScriptSandbox, me: str, *, fail: bool = False) -> Outcome:
    return await sb.run(
        TRACES,
        "main",
        {"me": me, "fail": fail},
        egress=no_egress,
        limits=Limits(timeout_s=20),
        tenant="back-to-back",
    )


def report(outcome: Outcome) -> dict[str, Any]:
    """What the job saw (from its value, or from the error it threw on purpose)."""
    import json

    if outcome.ok:
        assert isinstance(outcome.value, dict)
        return outcome.value
    assert outcome.error == "exception", outcome
    detail = outcome.detail.removeprefix("Error: ")
    return dict(json.loads(detail))


async def test_a_global_set_by_one_job_is_not_seen_by_the_next_back_to_back(
    sandbox: JavaScriptSandbox,
) -> None:
    first = await job(sandbox, "warm-up")  # the tenant's process is up, its pool full
    assert first.ok, first
    origins = [report(first)["origin"]]
    # more jobs than the pool holds, with no pause between them; every other one throws after
    # leaving its traces
    for i in range(3 * SPARES + 3):
        outcome = await job(sandbox, f"job-{i}", fail=i % 2 == 1)
        seen = report(outcome)
        assert seen["seen"] == CLEAN, (i, seen)
        origins.append(seen["origin"])
    # a Worker no earlier job touched, every time
    assert len(set(origins)) == len(origins)


async def test_the_pool_size_is_bounded() -> None:
    assert JavaScriptSandbox(spare_workers=0).spare_workers == 1
    assert JavaScriptSandbox(spare_workers=50).spare_workers == 8
    with pytest.raises(ValueError, match="spare_workers"):
        JavaScriptSandbox(spare_workers=True)


async def test_the_workers_rehearsal_never_reaches_egress_and_the_jobs_requests_do(
    sandbox: JavaScriptSandbox,
) -> None:
    """Each pre-warmed Worker made one axios request of its own, answered inside it: the
    egress callback sees only the jobs' requests, each job's own, in order."""
    seen: list[str] = []

    async def egress(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request["url"])
        return {"status": 200, "headers": [["content-type", "application/json"]], "body": "e30="}

    code = """
    async function main(data) {
      const response = await axios.get("https://api.example.com/jobs", { params: { n: data.n } });
      return { status: response.status, data: response.data };
    }
    """
    for n in range(2 * SPARES + 1):
        outcome = await sandbox.run(
            code, "main", {"n": n}, egress=egress, limits=Limits(timeout_s=20), tenant="rehearsed"
        )
        assert outcome.ok, outcome
        assert outcome.value == {"status": 200, "data": {}}
    assert seen == [f"https://api.example.com/jobs?n={n}" for n in range(2 * SPARES + 1)]


async def test_a_new_tenant_adopts_the_spare_process_and_a_new_spare_starts() -> None:
    async with JavaScriptSandbox(spare_processes=1) as sb:
        deadline = asyncio.get_running_loop().time() + 30
        while not (sb._spare_procs and sb._spare_procs[0].alive):  # started in the background
            assert asyncio.get_running_loop().time() < deadline, "no spare process came up"
            await asyncio.sleep(0.05)
        spare = sb._spare_procs[0]
        outcome = await sb.run(
            "async function main() { const seen = typeof globalThis.mark; "
            "globalThis.mark = 1; return seen; }",
            "main",
            {},
            egress=no_egress,
            tenant="newcomer",
        )
        assert outcome.ok, outcome
        assert outcome.value == "undefined"  # nothing ran in it before
        assert sb._processes[("newcomer", Limits.memory_mb)] is spare
        assert spare.tenant == "newcomer"
        assert sb._spare_procs  # the next spare
        assert sb._spare_procs[0] is not spare
        other = await sb.run(
            "async function main() { return typeof globalThis.mark; }",
            "main",
            {},
            egress=no_egress,
            tenant="second",
        )
        assert other.ok, other
        assert other.value == "undefined"
        assert sb._processes[("second", Limits.memory_mb)] is not spare
