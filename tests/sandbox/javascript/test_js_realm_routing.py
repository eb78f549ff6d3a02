"""Which jobs take the realm fast path (ISOLATION.md, host.js ``realmFits``): code that names a
global only a Worker has, or is an ES module, takes a fresh Worker; the same names inside
strings or comments or after ``.`` do not count; ``realms=False`` always takes a Worker. A realm
job that reads such a global at run time is re-run in a Worker if nothing of it has left yet,
and fails with a clear detail if it has (its next run takes a Worker). Either way a job gets
the answer a Worker would give.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jssandbox_egress import forward

from voicefn.sandbox.javascript import JavaScriptSandbox, Limits, Outcome

from servers import LocalServer, running_server

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

ROOMY = Limits(timeout_s=20)  # room for a busy 2-core machine


API = "https://api.example.com"  # the egress sends these to the test's server


class ServerEgress:
    """The engine's egress without its policy: requests go to the test's server, those to API
    with its origin mapped (as a proxy would: a URL without a port, see the port test)."""

    def __init__(self, server: LocalServer | None) -> None:
        self.server = server

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        url = request["url"]
        if self.server is not None and url.startswith(API):
            url = self.server.url + url[len(API) :]
        async with httpx.AsyncClient(timeout=10) as client:
            return await forward(client, request, url=url)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with running_server() as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[JavaScriptSandbox]:
    sb = JavaScriptSandbox(spare_workers=1)
    await sb.start()
    yield sb
    await sb.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def workers_only() -> AsyncIterator[JavaScriptSandbox]:
    sb = JavaScriptSandbox(spare_workers=1, spare_processes=0, realms=False)
    await sb.start()
    yield sb
    await sb.aclose()


async def run(
    sb: JavaScriptSandbox,
    code: str,
    data: dict[str, Any] | None = None,
    tenant: str = "routing",
    server: LocalServer | None = None,
) -> Outcome:
    return await sb.run(
        code, "main", data or {}, egress=ServerEgress(server), limits=ROOMY, tenant=tenant
    )


PLAIN = "async function main(data) { return { sum: data.x + 1, list: _.range(3) }; }"


async def test_plain_code_runs_in_a_realm(sandbox: JavaScriptSandbox) -> None:
    outcome = await run(sandbox, PLAIN, {"x": 41})
    assert outcome.ok, outcome
    assert outcome.value == {"sum": 42, "list": [0, 1, 2]}
    assert outcome.runner == "realm"


# Each name, read as a Worker would read it; the value is what a Worker has.
WORKER_GLOBALS = [
    ("Deno", "object"),
    ("process", "object"),
    ("Buffer", "function"),
    ("URL", "function"),
    ("TextEncoder", "function"),
    ("crypto", "object"),
    ("performance", "object"),
    ("structuredClone", "function"),
]


@pytest.mark.parametrize(("name", "kind"), WORKER_GLOBALS)
async def test_code_naming_a_worker_only_global_runs_in_a_worker(
    sandbox: JavaScriptSandbox, name: str, kind: str
) -> None:
    outcome = await run(sandbox, f"async function main(data) {{ return typeof {name}; }}")
    assert outcome.ok, outcome
    assert outcome.value == kind
    assert outcome.runner == "worker"


@pytest.mark.parametrize(
    "code",
    [
        "export async function main(data) { return data.x * 2; }",
        'import _ from "lodash";\nexport async function main(data) { return _.sum([data.x, data.x]); }',
        "async function main(data) { return data.x * 2; }\nexport { main };",
    ],
    ids=["export", "import", "export-list"],
)
async def test_an_es_module_runs_in_a_worker(sandbox: JavaScriptSandbox, code: str) -> None:
    outcome = await run(sandbox, code, {"x": 21})
    assert outcome.ok, outcome
    assert outcome.value == 42
    assert outcome.runner == "worker"


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ('async function main(data) { return "Deno"; }', "Deno"),
        ("async function main(data) { return 'process' + ':Buffer'; }", "process:Buffer"),
        ("async function main(data) { return `URL ${data.x} TextEncoder`; }", "URL 1 TextEncoder"),
        (
            "async function main(data) {\n  // crypto.randomUUID() would need a Worker\n  return 1;\n}",
            1,
        ),
        ("async function main(data) { /* performance.now() */ return 2; }", 2),
        ("async function main(data) { return data.URL + data?.structuredClone; }", "u3"),
        ("async function main(data) { return [data\n  .Deno, data. process]; }", [None, None]),
        ('async function main(data) { return "import \\" export"; }', 'import " export'),
    ],
    ids=[
        "string",
        "strings",
        "template",
        "line-comment",
        "block-comment",
        "property",
        "spaced-dot",
        "keywords",
    ],
)
async def test_worker_only_names_in_strings_comments_or_after_a_dot_stay_in_a_realm(
    sandbox: JavaScriptSandbox, code: str, value: Any
) -> None:
    outcome = await run(sandbox, code, {"x": 1, "URL": "u", "structuredClone": 3})
    assert outcome.ok, outcome
    assert outcome.value == value
    assert outcome.runner == "realm", code


async def test_a_worker_only_name_inside_a_template_substitution_counts(
    sandbox: JavaScriptSandbox,
) -> None:
    outcome = await run(sandbox, "async function main(data) { return `${typeof Deno}`; }")
    assert outcome.ok, outcome
    assert outcome.value == "object"
    assert outcome.runner == "worker"


async def test_everyday_names_as_locals_stay_in_a_realm_and_as_globals_take_a_worker(
    sandbox: JavaScriptSandbox,
) -> None:
    """`name`, `self`, `global`, `location`, `close` do not count statically (they are common
    local names); reading the Worker's globals of those names re-runs the job in a Worker."""
    locals_code = (
        "async function main(data) {\n"
        '  const name = "n"; let self = 1; const global = 2; const location = 3; const close = 4;\n'
        "  return [name, self, global, location, close];\n"
        "}"
    )
    local = await run(sandbox, locals_code, tenant="routing-everyday")
    assert local.ok, local
    assert local.value == ["n", 1, 2, 3, 4]
    assert local.runner == "realm"
    globals_code = (
        "async function main(data) {\n"
        "  return [typeof self, typeof global, typeof name, typeof location, typeof close];\n"
        "}"
    )
    read = await run(sandbox, globals_code, tenant="routing-everyday")
    assert read.ok, read
    assert read.value == ["object", "object", "string", "object", "function"]
    assert read.runner == "worker"


async def test_realms_false_always_takes_a_worker(workers_only: JavaScriptSandbox) -> None:
    for code in (PLAIN, PLAIN, 'async function main(data) { return "Deno" + data.x; }'):
        outcome = await run(workers_only, code, {"x": 41})
        assert outcome.ok, outcome
        assert outcome.runner == "worker"


async def test_realms_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="realms"):
        JavaScriptSandbox(realms="yes")  # type: ignore[arg-type]


# ----------------------------------------------------------------- names read at run time

DYNAMIC_FIRST = """
async function main(data) {
  console.log("reading", data.n);
  return typeof globalThis["De" + "no"];
}
"""


async def test_a_dynamic_read_before_any_request_is_rerun_in_a_worker(
    sandbox: JavaScriptSandbox,
) -> None:
    tenant = "routing-dynamic-first"
    outcome = await run(sandbox, DYNAMIC_FIRST, {"n": 1}, tenant=tenant)
    assert outcome.ok, outcome
    assert outcome.value == "object"  # the Worker's Deno: the job ran there
    assert outcome.runner == "worker"
    # its log line once: the realm's was never sent
    assert outcome.logs == [{"level": "log", "message": "reading 1", "source": "function"}]
    again = await run(sandbox, DYNAMIC_FIRST, {"n": 2}, tenant=tenant)
    assert again.ok, again
    assert again.value == "object", again
    assert again.runner == "worker"
    assert again.logs == [{"level": "log", "message": "reading 2", "source": "function"}]


DYNAMIC_AFTER = """
async function main(data) {
  const response = await axios.get(data.url);
  return [response.status, typeof globalThis["pro" + "cess"]];
}
"""


async def test_a_dynamic_read_after_a_request_fails_and_the_next_run_takes_a_worker(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    tenant = "routing-dynamic-after"
    data = {"url": f"{API}/echo"}
    outcome = await run(sandbox, DYNAMIC_AFTER, data, tenant, server)
    assert not outcome.ok, outcome
    assert outcome.error == "exception", outcome
    assert "process" in outcome.detail, outcome.detail
    assert outcome.runner == "realm"
    assert [r["status"] for r in outcome.http] == [200]  # the request was made, once
    again = await run(sandbox, DYNAMIC_AFTER, data, tenant, server)
    assert again.ok, again
    assert again.value == [200, "object"]
    assert again.runner == "worker"


AXIOS_WITH_PORT = """
async function main(data) {
  const first = await fetch(data.url + "?first=1");
  const response = await axios.get(data.url, { params: { second: 2 } });
  return [first.status, response.status, response.data.query];
}
"""


async def test_axios_to_a_url_with_a_port_after_a_request_succeeds(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    """axios' fetch adapter parses a URL that has a port (or credentials) with the global URL,
    which a realm lacks. The function never names URL and succeeds in a Worker: it must not
    fail because the fast path took it (whichever runner it ends on)."""
    data = {"url": f"{server.url}/echo"}
    outcome = await run(sandbox, AXIOS_WITH_PORT, data, "routing-port", server)
    assert outcome.ok, outcome
    assert outcome.value == [200, 200, {"second": ["2"]}]
    again = await run(sandbox, AXIOS_WITH_PORT, data, "routing-port", server)
    assert again.ok, again
    assert again.value == outcome.value


# ----------------------------------------------------------------- the same answers

SAME = [
    'async function main(data) { console.log("a", 1, { b: [1, 2] }); return { x: data.x * 2 }; }',
    "async function main(data) {\n"
    '  console.info(new Map([[1, "a"]]), new Set(["s"]));\n'
    "  console.warn([1, 2, 3], null, undefined, -0, 10n);\n"
    '  console.error("%s is", "this", { nested: { deeper: { deepest: { end: 1 } } } });\n'
    '  return [1, "two", null, true];\n'
    "}",
    'async function main(data) { throw new TypeError("bad " + data.x); }',
    "async function main(data) { return null.property; }",
    'async function main(data) { return [_.chunk([1, 2, 3], 2), moment.utc(0).format("YYYY-MM-DD")]; }',
    "async function main(data) { return await new Promise((r) => setTimeout(() => r(data.x), 1)); }",
    "module.exports = { main: async (data) => data.x };",
    # an error thrown by a queueMicrotask callback ends the job at once in a Worker ("Uncaught
    # Error: m"), long before its timer
    "async function main(data) {\n"
    '  queueMicrotask(() => { throw new Error("m"); });\n'
    "  await new Promise((resolve) => setTimeout(resolve, 1000));\n"
    "  return data.x;\n"
    "}",
    "async function other(data) { return 1; }",
]


@pytest.mark.parametrize(
    "code",
    SAME,
    ids=[
        "logs",
        "inspected-logs",
        "throw",
        "type-error",
        "libraries",
        "timer",
        "module-exports",
        "microtask-throw",
        "no-entrypoint",
    ],
)
async def test_a_realm_answers_what_a_worker_answers(
    sandbox: JavaScriptSandbox, workers_only: JavaScriptSandbox, code: str
) -> None:
    realm = await run(sandbox, code, {"x": 21})
    worker = await run(workers_only, code, {"x": 21})
    assert realm.runner == "realm"
    assert worker.runner == "worker"
    assert (realm.ok, realm.value, realm.error, realm.detail) == (
        worker.ok,
        worker.value,
        worker.error,
        worker.detail,
    )
    assert realm.logs == worker.logs


async def test_the_first_call_of_a_fresh_sandbox_runs_in_a_realm() -> None:
    """No process is up before the call (no spare one either): the tenant's process starts for
    it, and its first job already takes the fast path."""
    async with JavaScriptSandbox(spare_workers=1, spare_processes=0) as sb:
        outcome = await run(sb, PLAIN, {"x": 1}, tenant="routing-fresh")
        assert outcome.ok, outcome
        assert outcome.value == {"sum": 2, "list": [0, 1, 2]}, outcome
        assert outcome.runner == "realm"
        second = await run(sb, PLAIN, {"x": 2}, tenant="routing-fresh-other")
        assert second.ok, second
        assert second.runner == "realm", second
