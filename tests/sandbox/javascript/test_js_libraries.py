"""Issue 10: the vendored libraries in a job's Worker. axios is evaluated when the Worker is
made; moment and lodash only when the job first touches ``moment``/``_`` or imports them (the
Worker then costs about half the CPU). Either way each job gets its own instance: what one job
does to a library (or to the lazy global itself) is gone for the next one, also back to back
(Workers from the pool) and after a job that threw. ``import axios from "axios"``, ``moment``
and ``lodash`` (default and named) resolve to the same vendored copies as the globals.
"""

from __future__ import annotations

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

# What the Worker looks like before the job touches anything, then the job's own changes.
LAZY_STATE = """
async function main(data) {
  const described = (name) => {
    const d = Object.getOwnPropertyDescriptor(globalThis, name);
    return d === undefined ? "missing" : typeof d.get === "function" ? "lazy" : "value";
  };
  const before = { lodash: described("_"), moment: described("moment"), axios: described("axios") };
  let seen = null;
  if (data.touch) {
    seen = {
      mixin: typeof _.leftBehind,
      template: _.templateSettings.interpolate.source,
      locale: moment.locale(),
      chunk: _.chunk([1, 2, 3], 2),
      year: moment.utc(0).format("YYYY"),
    };
    _.mixin({ leftBehind: () => data.me });
    _.templateSettings.interpolate = /{{([\\s\\S]+?)}}/g;
    moment.defineLocale("left-behind-" + data.me, { parentLocale: "en" });
  }
  if (data.assign) {
    _ = data.me;
    moment = data.me;
  }
  const after = { lodash: described("_"), moment: described("moment") };
  if (data.fail) throw new Error("failed on purpose");
  return { before, after, seen, me: typeof _ === "function" ? "lodash" : _ };
}
"""

IMPORTS = """
import axios, { AxiosError } from "axios";
import moment from "moment";
import _, { chunk, get } from "lodash";

export async function main(data) {
  const dynamic = await import("lodash");
  const dynamicMoment = await import("moment");
  return {
    same: [axios === globalThis.axios, moment === globalThis.moment, _ === globalThis._],
    dynamic: [dynamic.default === _, dynamic.get === get, dynamicMoment.default === moment],
    error: typeof AxiosError,
    chunk: chunk([1, 2, 3], 2),
    get: get({ a: { b: data.me } }, "a.b"),
    versions: [_.VERSION, moment.version, typeof axios.VERSION],
  };
}
"""

NO_TOUCH = """
async function main(data) {
  return Object.getOwnPropertyDescriptor(globalThis, "_").get !== undefined;
}
"""


def axios_state(outcome: Outcome) -> str:
    """axios before a job reads it: evaluated with the Worker (most functions use it); in a
    realm (the fast path) lazy like the others, because a realm's setup is on every job's path."""
    assert outcome.runner in ("realm", "worker"), outcome
    return "value" if outcome.runner == "worker" else "lazy"


async def no_egress(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no network in this test"}


# Both runners: a realm per job (the fast path, where these functions go) and a fresh Worker.
@pytest_asyncio.fixture(
    scope="module", loop_scope="module", params=[True, False], ids=["realm", "worker"]
)
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[JavaScriptSandbox]:
    sb = JavaScriptSandbox(spare_workers=2, realms=request.param)
    await sb.start()
    yield sb
    await sb.aclose()


async def run(
    sb: JavaScriptSandbox, code: str, data: dict[str, Any], tenant: str = "libraries"
) -> Outcome:
    return await sb.run(
        code, "main", data, egress=no_egress, limits=Limits(timeout_s=20), tenant=tenant
    )


async def test_moment_and_lodash_are_evaluated_only_when_a_job_touches_them(
    sandbox: JavaScriptSandbox,
) -> None:
    outcome = await run(sandbox, LAZY_STATE, {"me": "a", "touch": True})
    assert outcome.ok, outcome.detail
    value = outcome.value
    assert value["before"] == {"lodash": "lazy", "moment": "lazy", "axios": axios_state(outcome)}
    assert value["after"] == {"lodash": "value", "moment": "value"}
    assert value["seen"]["chunk"] == [[1, 2], [3]]
    assert value["seen"]["year"] == "1970"
    assert value["me"] == "lodash"
    untouched = await run(sandbox, NO_TOUCH, {})
    assert untouched.ok, untouched.detail
    assert untouched.value is True


async def test_nothing_a_job_does_to_the_lazy_libraries_reaches_the_next_job(
    sandbox: JavaScriptSandbox,
) -> None:
    """More jobs than the pool holds, back to back: each sees pristine, still lazy globals
    and libraries whatever the one before did (mixins, template settings, locales,
    reassigning ``_`` and ``moment``, throwing)."""
    clean_seen = {
        "mixin": "undefined",
        "template": "<%=([\\s\\S]+?)%>",
        "locale": "en",
        "chunk": [[1, 2], [3]],
        "year": "1970",
    }
    for i in range(6):
        me = f"job-{i}"
        outcome = await run(
            sandbox, LAZY_STATE, {"me": me, "touch": True, "assign": i % 2 == 1, "fail": i == 3}
        )
        if i == 3:
            assert outcome.error == "exception"
            assert "failed on purpose" in outcome.detail
            continue
        assert outcome.ok, outcome.detail
        assert outcome.value["before"] == {
            "lodash": "lazy",
            "moment": "lazy",
            "axios": axios_state(outcome),
        }
        assert outcome.value["seen"] == clean_seen, me
        assert outcome.value["me"] == (me if i % 2 == 1 else "lodash")


async def test_the_libraries_can_be_imported_by_name(sandbox: JavaScriptSandbox) -> None:
    for me in ("first", "second"):
        outcome = await run(sandbox, IMPORTS, {"me": me}, tenant="imports")
        assert outcome.ok, outcome.detail
        assert outcome.value == {
            "same": [True, True, True],
            "dynamic": [True, True, True],
            "error": "function",
            "chunk": [[1, 2], [3]],
            "get": me,
            "versions": ["4.18.1", "2.31.0", "string"],
        }


async def test_an_import_changes_the_library_of_its_own_job_only(
    sandbox: JavaScriptSandbox,
) -> None:
    code = """
import _ from "lodash";
import axios from "axios";
export async function main(data) {
  const seen = [typeof _.leftBehind, axios.defaults.headers.common["X-Left"] ?? null];
  _.mixin({ leftBehind: () => 1 });
  axios.defaults.headers.common["X-Left"] = data.me;
  return seen;
}
"""
    for me in ("a", "b", "c", "d"):
        outcome = await run(sandbox, code, {"me": me}, tenant="imports-leak")
        assert outcome.ok, outcome.detail
        assert outcome.value == ["undefined", None], me
