"""The realm fast path keeps jobs apart (ISOLATION.md): a job that runs in a fresh V8 context
inside a reused realm Worker must reach no object of the outer realm (an outer object's
``constructor.constructor`` is the outer ``Function``: code there runs with ``Deno`` and outlives
the job), and nothing it leaves behind reaches the next job that Worker runs.

Every job here asserts ``outcome.runner == "realm"``: a job that silently ran in a fresh Worker
would prove nothing about realms. The probes therefore never read a Worker-only global (such a
read hands the job to a Worker); where a probe must read ``Deno`` itself, it makes a request
first, so the read can only fail (the realm's trap) or return the outer ``Deno`` (an escape).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jssandbox_egress import forward
from jssandbox_threads import worker_threads

from voicefn.sandbox.javascript import JavaScriptSandbox, Limits, Outcome

from servers import LocalServer, running_server

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

# room for a busy 2-core machine: none of these jobs may end by the wall clock unless it loops
ROOMY = Limits(timeout_s=20)
SHORT = Limits(timeout_s=1.5)  # the jobs that loop for ever
REFUSED_HOST = "refused.invalid"  # the egress below answers requests there with an error
HANGING_PATH = "/hang"  # and holds requests for this path until the test releases them
API = "https://api.example.com"  # the egress sends these to the test's server

# The realm's own intrinsics, taken before the probe touches anything, and a walk over every
# object reachable from given roots. It reads property descriptors only: no getter is called
# (a getter on globalThis may be the realm's trap for a Worker-only name, whose read would hand
# the job to a Worker; a library's getter may have effects).
WALK_JS = r"""
const OWN_OBJECT_PROTOTYPE = Object.prototype;
const OWN_CONSTRUCTORS = new Set([
  Function,
  (async function () {}).constructor,
  (function* () {}).constructor,
  (async function* () {}).constructor,
]);
const getProto = Reflect.getPrototypeOf;
const ownKeys = Reflect.ownKeys;
const descriptor = Reflect.getOwnPropertyDescriptor;
const mapEntries = Function.prototype.call.bind(Map.prototype.entries);
const setValues = Function.prototype.call.bind(Set.prototype.values);
const isObject = (v) => (typeof v === "object" && v !== null) || typeof v === "function";

// The last object of o's prototype chain.
function topOf(o) {
  let top = o;
  for (let p = getProto(top), n = 0; p !== null && n < 10000; p = getProto(p), n++) top = p;
  return top;
}

// The `constructor` o gives, read from descriptors (an accessor is reported, never called).
function constructorOf(o) {
  for (let p = o, n = 0; p !== null && n < 10000; p = getProto(p), n++) {
    const d = descriptor(p, "constructor");
    if (d !== undefined) return "value" in d ? d.value : "(an accessor)";
  }
  return undefined;
}

// Whether o looks like some realm's Object.prototype: the `__proto__` accessor and the
// legacy accessor methods are its own. (A null-prototype object of a library may have an own
// `hasOwnProperty`, as axios' merged config does: that alone proves nothing.)
function isAnObjectPrototype(o) {
  const proto = descriptor(o, "__proto__");
  return (proto !== undefined && "get" in proto)
    || (descriptor(o, "__defineGetter__") !== undefined && descriptor(o, "__lookupGetter__") !== undefined);
}

// Where `f.constructor.constructor...` leads: each hop is a function's `constructor`, read
// from descriptors; it must end at one of this realm's Function constructors (they are their
// own constructor's instances: Function.constructor === Function). A library may give a
// function its own `constructor` (axios' instance has `constructor: Axios`): that is one more
// hop, not a foreign function. A hop that is no function ends the chain there (that value is
// walked as an object of its own).
function constructorChainEnd(f) {
  let c = constructorOf(f);
  for (let n = 0; n < 16 && typeof c === "function" && !OWN_CONSTRUCTORS.has(c); n++) c = constructorOf(c);
  return c;
}

// Why o is not this realm's, or null. A chain that ends at an object that is no
// Object.prototype at all (a null-prototype object) is fine: its values are walked too.
function foreignness(o) {
  const top = topOf(o);
  if (top !== OWN_OBJECT_PROTOTYPE && isAnObjectPrototype(top)) {
    return "its prototype chain ends at another realm's Object.prototype";
  }
  if (typeof o === "function") {
    const end = constructorChainEnd(o);
    if (typeof end === "function" ? !OWN_CONSTRUCTORS.has(end) : end === "(an accessor)") {
      return "a function whose constructor is not one of this realm's Function constructors";
    }
  }
  return null;
}

// Every object reachable from roots ([name, value] pairs) through own property values (string
// and symbol keys), getters and setters (as functions), prototypes and Map/Set contents, plus
// the descriptor objects of every own property of each of descriptorsOf. A foreign object is
// reported once, and not walked into (everything behind it would be foreign too).
function walk(roots, descriptorsOf = []) {
  const seen = new Set();
  const queue = [];
  const foreign = [];
  const add = (value, path) => {
    if (isObject(value) && !seen.has(value)) {
      seen.add(value);
      queue.push([value, path]);
    }
  };
  for (const [name, value] of roots) add(value, name);
  for (const o of descriptorsOf) {
    for (const key of ownKeys(o)) add(descriptor(o, key), `descriptor(${String(key)})`);
  }
  for (let i = 0; i < queue.length && i < 1000000; i++) {
    const [o, path] = queue[i];
    let why;
    try {
      why = foreignness(o);
    } catch (err) {
      why = "unreadable: " + String(err);
    }
    if (why !== null) {
      if (foreign.length < 40) foreign.push(`${path}: ${why}`);
      continue;
    }
    try {
      add(getProto(o), path + ".__proto__");
    } catch { /* a Proxy trap that throws */ }
    let keys = [];
    try {
      keys = ownKeys(o);
    } catch { /* ditto */ }
    for (const key of keys) {
      let d;
      try {
        d = descriptor(o, key);
      } catch {
        continue;
      }
      if (d === undefined) continue;
      const at = `${path}.${String(key)}`;
      if ("value" in d) {
        add(d.value, at);
      } else {
        add(d.get, at + "{get}");
        add(d.set, at + "{set}");
      }
    }
    try {
      for (const [k, v] of mapEntries(o)) {
        add(k, path + "{key}");
        add(v, path + "{value}");
      }
    } catch { /* not a Map */ }
    try {
      for (const v of setValues(o)) add(v, path + "{item}");
    } catch { /* not a Set */ }
  }
  return { visited: seen.size, foreign, tags: [...tagsOf(seen)] };
}

// A census of what is reachable: the Symbol.toStringTag values of the walked objects and the
// names of the walked functions, as "tag X" and "function X" (so a test can say that no
// WebAssembly object, FinalizationRegistry or waitAsync is reachable by any path).
function tagsOf(objects) {
  const tags = new Set();
  for (const o of objects) {
    try {
      const tag = descriptor(o, Symbol.toStringTag);
      if (tag !== undefined && typeof tag.value === "string") tags.add("tag " + tag.value);
      const name = typeof o === "function" ? descriptor(o, "name") : undefined;
      if (name !== undefined && typeof name.value === "string") tags.add("function " + name.value);
    } catch { /* a Proxy trap that throws */ }
  }
  return tags;
}
"""


class ServerEgress:
    """The engine's egress for these tests: requests to API go to a real HTTP server on
    127.0.0.1 (through httpx; the egress maps the origin, as a proxy would: the jobs' URLs carry
    no port), except that REFUSED_HOST gets an error reply and HANGING_PATH is held until
    :meth:`release` (or until the job that asked ends and the request is cancelled)."""

    def __init__(
        self, server: LocalServer | None = None, watch: Callable[[], set[str]] | None = None
    ) -> None:
        self.server = server
        self.urls: list[str] = []
        self.released = asyncio.Event()
        self.watch = watch
        #: what ``watch`` said at each request, while the job that made it was running
        self.watched: list[set[str]] = []

    def release(self) -> None:
        self.released.set()

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        url = request["url"]
        self.urls.append(url)
        if self.watch is not None:
            self.watched.append(self.watch())
        if REFUSED_HOST in url:
            return {"error": "refused by this test's egress"}
        if HANGING_PATH in url:
            await self.released.wait()
            return {"status": 200, "headers": [], "body": ""}
        if self.server is None:
            return {"error": "this test has no server"}
        async with httpx.AsyncClient(timeout=10) as client:
            to = url.replace(API, self.server.url, 1) if url.startswith(API) else url
            return await forward(client, request, url=to, drop_host=True)


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


async def run_realm(
    sb: JavaScriptSandbox,
    code: str,
    data: dict[str, Any] | None = None,
    *,
    egress: ServerEgress | None = None,
    limits: Limits = ROOMY,
    tenant: str = "realm-escapes",
) -> Outcome:
    """Run ``main`` of ``code``; the job must have run in a realm."""
    outcome = await sb.run(
        code, "main", data or {}, egress=egress or ServerEgress(), limits=limits, tenant=tenant
    )
    assert outcome.runner == "realm", outcome
    return outcome


def probe(body: str) -> str:
    """A job: WALK_JS, then ``main`` with ``body``."""
    return f"{WALK_JS}\nasync function main(data) {{\n{body}\n}}\n"


def assert_nothing_outer(outcome: Outcome) -> dict[str, Any]:
    """The job returned ``{"walk": walk(...), ...}`` and the walk found nothing foreign."""
    assert outcome.ok, outcome
    value = outcome.value
    assert isinstance(value, dict), value
    assert value["walk"]["foreign"] == [], value
    return value


# ----------------------------------------------------------------- 1. the whole graph


GRAPH = probe(
    """
  const values = [];
  const keep = (name, value) => { values.push([name, value]); return value; };
  // the libraries, evaluated in this realm by their first read
  keep("axios", axios);
  keep("lodash", _);
  keep("moment", moment);
  keep("a moment", moment.utc("2024-03-05T10:30:00Z").add(1, "day"));
  keep("lodash result", _.groupBy([{ k: 1 }, { k: 2 }], "k"));
  // requests that the egress answers, one that it refuses, one the server fails
  const fetched = keep("fetch response", await fetch(data.echo + "?via=fetch"));
  keep("fetch json", await fetched.json());
  keep("fetch headers", fetched.headers);
  const viaAxios = keep("axios response", await axios.post(data.echo, { via: "axios" }));
  try {
    await fetch(data.refused);
  } catch (err) {
    keep("fetch error", err);
  }
  try {
    await axios.get(data.failing);
  } catch (err) {
    keep("axios error", err);
  }
  try {
    null.property;
  } catch (err) {
    keep("type error", err);
  }
  // the web classes, built by the job
  keep("headers", new Headers({ "x-a": "1" }));
  keep("request", new Request("https://example.com/x", { method: "POST", body: "b" }));
  const response = keep("response", new Response("body", { status: 201, headers: { "x-b": "2" } }));
  keep("response text", await response.clone().text());
  const controller = keep("controller", new AbortController());
  keep("signal", controller.signal);
  controller.abort();
  keep("abort reason", controller.signal.reason);
  keep("timeout signal", AbortSignal.timeout(100000));
  keep("timer", setTimeout(() => {}, 0));
  keep("pending", new Promise(() => {}));
  // errors and objects the engine itself makes, here and in the libraries
  try {
    (function deep() { deep(); })();
  } catch (err) {
    keep("stack overflow", err);
  }
  try {
    JSON.parse("{");
  } catch (err) {
    keep("syntax error", err);
  }
  try {
    (0, eval)("(");
  } catch (err) {
    keep("eval syntax error", err);
  }
  keep("temporal", Temporal.Now.instant());
  keep("intl", [new Intl.DateTimeFormat("en").formatToParts(0), new Intl.Segmenter("en").segment("a b")]);
  keep("match", /(?<word>b)/.exec("abc"));
  keep("generators", [(function* () { yield 1; })(), (async function* () { yield 1; })()]);
  keep("arguments", (function () { return arguments; })(1));
  keep("axios instance", axios.create({ baseURL: "https://example.com" }));
  keep("lodash chain", _([1, 2]).map((x) => x * 2));
  keep("moment duration", moment.duration(5, "minutes"));
  const walked = walk([["globalThis", globalThis], ...values], [globalThis]);
  return { walk: walked, status: fetched.status, axiosStatus: viaAxios.status };
"""
)


async def test_no_object_reachable_in_a_realm_belongs_to_another_realm(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    egress = ServerEgress(server)
    data = {
        "echo": f"{API}/echo",
        "refused": f"https://{REFUSED_HOST}/",
        "failing": f"{API}/status/500",
    }
    outcome = await run_realm(sandbox, GRAPH, data, egress=egress)
    value = assert_nothing_outer(outcome)
    assert value["status"] == 200, value
    assert value["axiosStatus"] == 200, value
    # the walk saw the intrinsics, three libraries, the requests' results and errors (a bare
    # realm's intrinsics alone are ~1,100 objects; this job's graph was ~3,700 when written)
    assert value["walk"]["visited"] > 2000, value["walk"]
    assert egress.urls == [
        f"{API}/echo?via=fetch",
        f"{API}/echo",
        f"https://{REFUSED_HOST}/",
        f"{API}/status/500",
    ]


# ----------------------------------------------------------------- 2. known escapes


async def test_the_constructor_of_the_constructor_is_this_realms_function(
    sandbox: JavaScriptSandbox,
) -> None:
    code = probe(
        """
  const F = this.constructor.constructor;
  const G = ({}).constructor.constructor;
  const global = F("return this")();
  const info = (name) => {
    const d = Reflect.getOwnPropertyDescriptor(global, name);
    return d === undefined ? "absent" : "value" in d ? "value: " + typeof d.value : "accessor";
  };
  return {
    walk: walk([["F", F], ["G", G], ["global", global]], [global]),
    sameFunction: F === Function && G === Function,
    sameGlobal: global === globalThis && Function("return this")() === globalThis,
    deno: info("Deno"),
    proc: info("process"),
  };
"""
    )
    value = assert_nothing_outer(await run_realm(sandbox, code))
    assert value["sameFunction"] is True, value
    assert value["sameGlobal"] is True, value
    # absent, or the realm's own trap (an accessor whose getter the walk found to be this realm's)
    assert value["deno"] in ("absent", "accessor"), value
    assert value["proc"] in ("absent", "accessor"), value


@pytest.mark.parametrize(
    "read",
    [
        'this.constructor.constructor("return typeof Deno")()',
        'Function("return this")().Deno',
        'Function("return this")().process',
        '(0, eval)("typeof process")',
        '[].map.constructor("return typeof Deno")()',
    ],
)
async def test_reading_deno_through_a_function_constructor_hits_the_realms_trap(
    sandbox: JavaScriptSandbox, server: LocalServer, read: str
) -> None:
    """The read comes after a request, so the job cannot be handed to a Worker: in the realm it
    fails (the realm's trap for the name); the outer realm's Function would have returned Deno."""
    code = f"""
    async function main(data) {{
      await fetch(data.echo);
      const got = {read};
      return {{ got: typeof got === "object" ? "an object" : String(got) }};
    }}
    """
    outcome = await run_realm(sandbox, code, {"echo": f"{API}/echo"}, egress=ServerEgress(server))
    assert not outcome.ok, outcome
    assert outcome.error == "exception", outcome
    name = "process" if "process" in read else "Deno"
    assert name in outcome.detail, outcome.detail
    assert "fast path" in outcome.detail, outcome.detail


async def test_error_prepare_stack_trace_cannot_be_set_and_hands_out_no_call_sites(
    sandbox: JavaScriptSandbox,
) -> None:
    code = probe(
        """
  const got = [];
  const attempts = {};
  const hook = (error, sites) => { got.push(error, sites); return "hooked"; };
  try {
    Error.prepareStackTrace = hook;
    attempts.assign = "no error";
  } catch (err) {
    got.push(err);
    attempts.assign = err.name;
  }
  try {
    Object.defineProperty(Error, "prepareStackTrace", { value: hook, configurable: true });
    attempts.define = "defined";
  } catch (err) {
    got.push(err);
    attempts.define = err.name;
  }
  attempts.reflect = Reflect.defineProperty(Error, "prepareStackTrace", { get: () => hook });
  attempts.deleted = Reflect.deleteProperty(Error, "prepareStackTrace");
  class Sub extends Error {
    static prepareStackTrace(error, sites) { got.push(error, sites); return "hooked"; }
  }
  const stacks = [];
  const make = [
    () => new Error("plain"),
    () => new Sub("sub"),
    () => { try { null.x; } catch (err) { return err; } },
    () => { try { (function deep(n) { return n ? deep(n - 1) : undefined.y; })(5); } catch (err) { return err; } },
  ];
  for (const m of make) {
    const err = m();
    got.push(err);
    stacks.push(typeof err.stack);
  }
  // an error thrown and caught across a realm-made callback (the timer) and a promise
  await new Promise((resolve) => setTimeout(() => {
    try { null.z; } catch (err) { got.push(err); stacks.push(typeof err.stack); }
    resolve();
  }, 0));
  await Promise.reject(new RangeError("r")).catch((err) => { got.push(err); stacks.push(typeof err.stack); });
  const d = Reflect.getOwnPropertyDescriptor(Error, "prepareStackTrace");
  return {
    walk: walk([["got", got]]),
    attempts,
    stacks,
    hooked: got.some((x) => Array.isArray(x)),
    now: typeof Error.prepareStackTrace,
    writable: d === undefined ? "absent" : d.writable === true || d.configurable === true,
  };
"""
    )
    value = assert_nothing_outer(await run_realm(sandbox, code))
    assert value["hooked"] is False, value
    assert value["now"] == "undefined", value
    assert value["writable"] is False, value
    assert value["attempts"]["define"] == "TypeError", value
    assert value["attempts"]["reflect"] is False, value
    assert value["attempts"]["deleted"] is False, value
    assert value["stacks"] == ["string"] * 6, value


async def test_error_capture_stack_trace_installs_nothing_outer(
    sandbox: JavaScriptSandbox,
) -> None:
    code = probe(
        """
  const got = [];
  const target = {};
  Error.captureStackTrace(target);
  got.push(target, Reflect.getOwnPropertyDescriptor(target, "stack"));
  function inner() {
    const t = {};
    Error.captureStackTrace(t, inner);
    return t;
  }
  const second = inner();
  got.push(second, Reflect.getOwnPropertyDescriptor(second, "stack"));
  const fn = function () {};
  Error.captureStackTrace(fn);
  got.push(fn, Reflect.getOwnPropertyDescriptor(fn, "stack"));
  return { walk: walk([["got", got]]), stack: typeof target.stack, second: typeof second.stack };
"""
    )
    value = assert_nothing_outer(await run_realm(sandbox, code))
    assert value["stack"] == "string", value
    assert value["second"] == "string", value


async def test_dynamic_import_built_at_run_time_loads_nothing(sandbox: JavaScriptSandbox) -> None:
    """``import()`` in eval'd or constructed code: the router cannot see it. Whatever it yields
    (a rejection's error, a namespace) must be this realm's, and no module of another realm may
    run (its default export would be that realm's global, or its ``typeof Deno``)."""
    code = probe(
        """
  const word = ["im", "port"].join("");
  const attempts = {
    evalData: () => (0, eval)(word + "('data:text/javascript,export default 1')"),
    evalLiteral: () => (0, eval)("import('data:text/javascript,export default globalThis')"),
    functionData: () => Function("return " + word + "('data:text/javascript,export default typeof Deno')")(),
    asyncFunction: () => new (async function () {}).constructor("return await " + word + "('node:vm')")(),
    relative: () => (0, eval)(word + "('./worker.js')"),
    bare: () => (0, eval)(word + "('lodash')"),
  };
  const got = [];
  const results = {};
  for (const [name, attempt] of Object.entries(attempts)) {
    try {
      const ns = await attempt();
      got.push(ns);
      let d;
      try { d = Reflect.getOwnPropertyDescriptor(ns, "default"); } catch { d = undefined; }
      const value = d === undefined ? undefined : d.value;
      results[name] = value === globalThis ? "resolved: this realm's global"
        : "resolved: " + (isObject(value) ? "an object" : String(value));
    } catch (err) {
      got.push(err);
      results[name] = "rejected";
    }
  }
  return { walk: walk([["got", got]]), results };
"""
    )
    value = assert_nothing_outer(await run_realm(sandbox, code))
    for name, result in value["results"].items():
        # a module that ran outside this realm: its global, Deno, or a namespace of its own
        assert result in ("rejected", "resolved: this realm's global", "resolved: 1"), (name, value)


CALLERS = probe(
    """
  const got = [];
  const calls = {};
  // Everything a callback can reach: its arguments, `this`, and the functions that called it.
  function grab(label, args, self) {
    calls[label] = (calls[label] ?? 0) + 1;
    got.push(self, ...args);
    let f = args.callee;
    for (let n = 0; n < 64 && f; n++) {
      let caller;
      try {
        caller = f.caller;
      } catch (err) {
        got.push(err);
        break;
      }
      if (caller === null || caller === undefined) break;
      got.push(caller);
      f = caller;
    }
  }
  await new Promise((resolve) => setTimeout(function () { grab("timeout", arguments, this); resolve(); }, 0));
  await new Promise((resolve) => {
    let n = 0;
    const handle = setInterval(function () {
      grab("interval", arguments, this);
      if (++n === 2) {
        clearInterval(handle);
        resolve();
      }
    }, 1);
  });
  await fetch(data.echo).then(function (response) { grab("then", arguments, this); return response.text(); });
  // request options the realm's fetch reads: getters, toString, a body that is no string
  const init = {
    get method() { grab("method getter", arguments, this); return "POST"; },
    headers: { get "x-probe"() { grab("header getter", arguments, this); return "1"; } },
    body: { toString() { grab("body toString", arguments, this); return "body"; } },
  };
  const url = { toString() { grab("url toString", arguments, this); return data.echo; } };
  await (await fetch(url, init)).text();
  await axios.post(data.echo, { toJSON() { grab("toJSON", arguments, this); return { a: 1 }; } });
  // console: whatever the formatter calls must get nothing outer
  const custom = {
    [Symbol.for("Deno.customInspect")]() { grab("customInspect", arguments, this); return "custom"; },
    [Symbol.for("nodejs.util.inspect.custom")]() { grab("inspect.custom", arguments, this); return "custom"; },
    [Symbol.toPrimitive]() { grab("toPrimitive", arguments, this); return "primitive"; },
    toString() { grab("toString", arguments, this); return "string"; },
    toJSON() { grab("toJSON", arguments, this); return "json"; },
    get getter() { grab("getter", arguments, this); return "got"; },
    set setter(v) { grab("setter", arguments, this); },
  };
  const traps = {};
  for (const trap of ["get", "set", "has", "ownKeys", "getOwnPropertyDescriptor", "getPrototypeOf",
      "defineProperty", "deleteProperty", "apply", "construct", "isExtensible", "preventExtensions",
      "setPrototypeOf"]) {
    traps[trap] = function () {
      grab("proxy " + trap, arguments, this);
      return Reflect[trap](...arguments);
    };
  }
  const proxy = new Proxy({ inside: 1, custom }, traps);
  const proxiedFunction = new Proxy(function named() {}, traps);
  console.log("with a custom inspector", custom);
  console.log(proxy, proxiedFunction, [custom, proxy]);
  console.info("%o %s %d %j", custom, custom, custom, proxy);
  console.error(new Map([[custom, proxy]]), new Set([proxy]));
  console.table([custom]);
  console.dir(proxy);
  console.assert(false, custom, proxy);
  return { walk: walk([["got", got]]), calls };
"""
)


async def test_callbacks_and_the_console_formatter_hand_user_code_nothing_outer(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    """``arguments.callee.caller`` chains and arguments from inside timer, fetch, axios and
    console callbacks (getters, a Proxy, custom inspectors): the outer side never calls user
    code, so nothing they get is outer; the formatter sees only what the realm described."""
    outcome = await run_realm(
        sandbox, CALLERS, {"echo": f"{API}/echo"}, egress=ServerEgress(server)
    )
    value = assert_nothing_outer(outcome)
    calls = value["calls"]
    # the probes themselves ran (a walk of nothing would prove nothing)
    assert calls["timeout"] == 1, calls
    assert calls["interval"] == 2, calls
    assert calls["then"] == 1, calls
    assert calls["url toString"] >= 1, calls
    assert calls["toJSON"] >= 1, calls
    # the log lines were written (their text is the formatter's business, not this test's)
    levels = [line["level"] for line in outcome.logs]
    assert levels == ["log", "log", "info", "error", "log", "log", "error"], outcome.logs


# A thrown, rejected or returned value whose every hook (getters of message/name/stack,
# toString, toJSON, Symbol.toPrimitive, custom inspectors, a Proxy's get) reports whether it was
# handed an object of another realm (as `this`, an argument or its caller): whoever turns the
# value into the outcome's detail or value (the realm, V8's error reporting, the outer side)
# must not call it with one. The report lands in the text it returns.
HOSTILE_VALUES = probe(
    """
  function classify(label, self, args) {
    const found = [];
    for (const v of [self, ...args]) if (isObject(v) && foreignness(v) !== null) found.push(foreignness(v));
    let caller = null;
    try { caller = args.callee.caller; } catch { /* a strict caller */ }
    if (isObject(caller) && foreignness(caller) !== null) found.push("its caller: " + foreignness(caller));
    return found.length ? `ESCAPED(${label}: ${found.join("; ")})` : `clean-${label}`;
  }
  const hostile = (base) => {
    for (const key of ["message", "name", "stack", "cause", "toString", "constructor"]) {
      Object.defineProperty(base, key, { configurable: true, get: function () { return classify(key, this, arguments); } });
    }
    base[Symbol.for("Deno.customInspect")] = function () { return classify("customInspect", this, arguments); };
    base[Symbol.for("nodejs.util.inspect.custom")] = function () { return classify("inspect.custom", this, arguments); };
    base[Symbol.toPrimitive] = function () { return classify("toPrimitive", this, arguments); };
    base.toJSON = function () { return classify("toJSON", this, arguments); };
    return base;
  };
  const make = {
    error: () => hostile(new Error("e")),
    object: () => hostile({}),
    proxy: () => new Proxy(hostile(new Error("p")), {
      get: function (target, key) { return key === "then" ? undefined : classify("get " + String(key), this, arguments); },
    }),
  };
  const value = make[data.value]();
  if (data.how === "microtask") queueMicrotask(() => { throw value; });
  if (data.how === "rejection") Promise.reject(value);
  if (data.how === "timer") setTimeout(() => { throw value; }, 0);
  if (data.how === "throw") throw value;
  if (data.how === "return") return value;
  await new Promise((resolve) => setTimeout(resolve, 50));
  return "not ended";
"""
)


@pytest.mark.parametrize("value", ["error", "object", "proxy"])
@pytest.mark.parametrize("how", ["throw", "timer", "microtask", "rejection", "return"])
async def test_hooks_of_thrown_and_returned_values_get_nothing_outer(
    sandbox: JavaScriptSandbox, how: str, value: str
) -> None:
    outcome = await run_realm(sandbox, HOSTILE_VALUES, {"how": how, "value": value})
    assert "ESCAPED" not in outcome.detail, outcome.detail
    assert "ESCAPED" not in str(outcome.value), outcome.value
    if how in ("throw", "timer", "rejection"):
        assert outcome.error == "exception", outcome
        assert "clean-" in outcome.detail, outcome.detail  # the hooks ran, and said so
    elif how == "return":
        assert outcome.ok, outcome
        assert "clean-" in str(outcome.value), outcome.value


async def test_no_path_reaches_wait_async_finalization_registry_or_webassembly(
    sandbox: JavaScriptSandbox,
) -> None:
    """They would run the job's code after it ended (as tasks of the realm Worker). Without
    reading them (a read may hand the job to a Worker): a walk of everything reachable finds
    none of them, and where their names remain it is as an accessor (the realm's trap), never
    as a value."""
    code = probe(
        """
  const global = Function("return this")();
  const everything = walk([["globalThis", global]], [global]);
  const how = (o, name) => {
    const d = Reflect.getOwnPropertyDescriptor(o, name);
    return d === undefined ? "absent" : "value" in d ? "a value" : "an accessor";
  };
  return {
    walk: everything,
    census: everything.tags.filter((t) => t.startsWith("tag WebAssembly") || t === "tag FinalizationRegistry"
      || t === "function FinalizationRegistry" || t === "function waitAsync"),
    // the census works: things that are there are found
    control: ["tag Atomics", "function WeakRef", "function wait"].filter((t) => everything.tags.includes(t)),
    names: [how(global, "WebAssembly"), how(global, "FinalizationRegistry"), how(Atomics, "waitAsync")],
  };
"""
    )
    value = assert_nothing_outer(await run_realm(sandbox, code))
    assert value["census"] == [], value["census"]
    assert value["control"] == ["tag Atomics", "function WeakRef", "function wait"]
    for how in value["names"]:
        assert how in ("absent", "an accessor"), value["names"]


@pytest.mark.parametrize(
    ("name", "read"),
    [
        # (the names themselves in the code send it to a Worker: built at run time here)
        ("WebAssembly", 'typeof globalThis["Web" + "Assembly"]'),
        ("WebAssembly", '(0, eval)("typeof Web" + "Assembly")'),
        ("FinalizationRegistry", 'typeof globalThis["Finalization" + "Registry"]'),
        ("waitAsync", "typeof Atomics.waitAsync"),
        ("waitAsync", '(0, eval)("typeof Atomics.waitAsync")'),
    ],
)
async def test_reading_wait_async_finalization_registry_or_webassembly_gets_nothing(
    sandbox: JavaScriptSandbox, server: LocalServer, name: str, read: str
) -> None:
    """Read after a request (so the job stays in its realm): "undefined", or the realm's trap
    ends the job naming it; never the thing itself."""
    code = f"""
    async function main(data) {{
      await fetch(data.echo);
      return {read};
    }}
    """
    outcome = await run_realm(sandbox, code, {"echo": f"{API}/echo"}, egress=ServerEgress(server))
    if outcome.ok:
        assert outcome.value == "undefined", outcome
    else:
        assert outcome.error == "exception", outcome
        assert name in outcome.detail, outcome.detail


# ----------------------------------------------------------------- 3. nothing survives a job

# Job A leaves everything it can behind: globals, polluted prototypes and built-ins, library
# state, a replaced console and fetch, timers that would log and set globals, a promise that
# never settles and a request the egress never answers.
LEAVER = """
async function main(data) {
  const realFetch = fetch;
  const realThen = Promise.prototype.then;
  console.log("A-line");
  globalThis.leftA = "A";
  Object.prototype.leftA = "A";
  Array.prototype.leftA = "A";
  Function.prototype.leftA = "A";
  Promise.prototype.then = function (ok, fail) {
    globalThis.thenHijacked = "A";
    return realThen.call(this, ok, fail);
  };
  JSON.parse = () => ({ hijacked: "A" });
  axios.defaults.headers.common["X-Left"] = "A";
  _.mixin({ leftA: () => "A" });
  moment.defineLocale("left-a", { parentLocale: "en" });
  moment.locale("left-a");
  console.leftA = "A";
  const realLog = console.log;
  console.log = (...args) => { globalThis.consoleHijacked = "A"; realLog("A-hijacked", ...args); };
  fetch.leftA = "A";
  globalThis.fetch = (...args) => { globalThis.fetchHijacked = "A"; return realFetch(...args); };
  setTimeout(() => { realLog("A-timeout"); globalThis.fromTimer = "A"; }, 0);
  setInterval(() => { realLog("A-interval"); globalThis.fromInterval = "A"; }, 1);
  new Promise(() => {}).then(() => { globalThis.settled = "A"; });
  realFetch(data.hang).then(
    () => { realLog("A-late"); globalThis.late = "A"; },
    () => { realLog("A-late-failed"); globalThis.late = "A-failed"; },
  );
  if (data.mode === "throw") throw new Error("A threw");
  if (data.mode === "loop") while (true) {}
  if (data.mode === "timer-loop") setTimeout(() => { for (;;) {} }, 0);
  return "A done";
}
"""

# Job B reports what it finds, logs one line, makes a request and waits on a timer of its own
# (an interval or timeout left by A would fire meanwhile and set its global).
CHECKER = """
async function main(data) {
  const native = (f) => typeof f === "function" && /\\{\\s*\\[native code\\]\\s*\\}$/.test(Function.prototype.toString.call(f));
  const seen = {
    global: globalThis.leftA ?? null,
    object: ({}).leftA ?? null,
    array: [].leftA ?? null,
    function: (function () {}).leftA ?? null,
    then: native(Promise.prototype.then),
    parse: JSON.parse('{"a": 1}'),
    axios: axios.defaults.headers.common["X-Left"] ?? null,
    lodash: typeof _.leftA,
    moment: moment.locale(),
    locale: moment.locales().includes("left-a"),
    console: console.leftA ?? null,
    fetch: fetch.leftA ?? null,
  };
  console.log("B-line", data.me);
  const response = await fetch(data.echo);
  seen.status = response.status;
  await new Promise((resolve) => setTimeout(resolve, 30));
  await Promise.resolve().then(() => null);
  for (const key of ["fromTimer", "fromInterval", "settled", "late", "thenHijacked", "consoleHijacked", "fetchHijacked"]) {
    seen[key] = globalThis[key] ?? null;
  }
  return seen;
}
"""

CLEAN = {
    "global": None,
    "object": None,
    "array": None,
    "function": None,
    "then": True,
    "parse": {"a": 1},
    "axios": None,
    "lodash": "undefined",
    "moment": "en",
    "locale": False,
    "console": None,
    "fetch": None,
    "status": 200,
    "fromTimer": None,
    "fromInterval": None,
    "settled": None,
    "late": None,
    "thenHijacked": None,
    "consoleHijacked": None,
    "fetchHijacked": None,
}
LEFTOVERS = "realm-leftovers"  # one tenant: one process, whose realm Worker takes job after job
# A job that timed out leaves its Worker spinning until the idle-CPU watch recycles the process
# (cpu-after-job, seconds later): that test has a tenant of its own, so that no other test's
# jobs land in a process started meanwhile.
TIMED_OUT = "realm-leftovers-timeout"


async def leave(
    sb: JavaScriptSandbox,
    egress: ServerEgress,
    mode: str,
    limits: Limits,
    tenant: str = LEFTOVERS,
) -> Outcome:
    data = {"hang": f"{API}{HANGING_PATH}", "mode": mode}
    return await run_realm(sb, LEAVER, data, egress=egress, limits=limits, tenant=tenant)


def worker_thread_names(sb: JavaScriptSandbox) -> set[str]:
    """The Worker threads of the LEFTOVERS tenant's process (Deno names each ``worker-N``, N
    new for every Worker it creates)."""
    process = sb._processes[(LEFTOVERS, Limits().memory_mb)]
    assert process.proc is not None
    return set(worker_threads(process.proc.pid))


def watching_egress(sb: JavaScriptSandbox, server: LocalServer) -> ServerEgress:
    """An egress that notes the LEFTOVERS process's Worker threads at each request (while the
    job that made it runs, so the Worker running it is among them)."""
    return ServerEgress(server, watch=lambda: worker_thread_names(sb))


async def assert_clean_after(
    sb: JavaScriptSandbox,
    egress: ServerEgress,
    *,
    a_worker_stays: bool,
    tenant: str = LEFTOVERS,
) -> None:
    """Several B's in a row: each finds nothing of A and has only its own log line. If A's
    realm Worker stays (A did not time out), the B's run in it: A's request saw the Worker
    threads, and no B's request sees one more (no Worker was created for them), so they prove
    that a Worker's next realm starts clean, not that a fresh Worker does."""
    before = egress.watched[-1] if a_worker_stays else None
    for i in range(3):
        me = f"b-{i}"
        data = {"echo": f"{API}/echo", "me": me}
        outcome = await run_realm(sb, CHECKER, data, egress=egress, tenant=tenant)
        assert outcome.ok, outcome
        assert outcome.value == CLEAN, outcome.value
        assert outcome.logs == [{"level": "log", "message": f"B-line {me}", "source": "function"}]
        assert [r["url"] for r in outcome.http] == [f"{API}/echo"], outcome.http
        if before is not None:
            assert egress.watched[-1] - before == set(), "a Worker was created for a B job"


async def test_nothing_a_job_leaves_reaches_the_next_jobs(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    egress = watching_egress(sandbox, server)
    a = await leave(sandbox, egress, "return", Limits(timeout_s=5))
    assert a.ok, a
    assert a.value == "A done", a
    assert [line["message"] for line in a.logs] == ["A-line"], a.logs
    await assert_clean_after(sandbox, egress, a_worker_stays=True)
    # the request A left waiting is answered only now: it reaches no job
    egress.release()
    await assert_clean_after(sandbox, egress, a_worker_stays=True)


async def test_nothing_survives_a_job_that_threw(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    egress = watching_egress(sandbox, server)
    a = await leave(sandbox, egress, "throw", Limits(timeout_s=5))
    assert a.error == "exception", a
    assert a.detail == "Error: A threw", a
    await assert_clean_after(sandbox, egress, a_worker_stays=True)
    egress.release()


async def test_nothing_survives_a_job_that_timed_out(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    egress = ServerEgress(server)
    a = await leave(sandbox, egress, "loop", SHORT, TIMED_OUT)
    assert a.error == "timeout", a
    assert a.stopped_by == "wall-clock", a
    # its realm Worker was terminated: the B's run in another (a new one, or a new process's)
    await assert_clean_after(sandbox, egress, a_worker_stays=False, tenant=TIMED_OUT)
    egress.release()


async def test_nothing_survives_a_job_that_returned_with_a_looping_timer_pending(
    sandbox: JavaScriptSandbox, server: LocalServer
) -> None:
    egress = watching_egress(sandbox, server)
    a = await leave(sandbox, egress, "timer-loop", SHORT)
    assert a.ok, a
    assert a.value == "A done", a
    await assert_clean_after(sandbox, egress, a_worker_stays=True)
    egress.release()


# ----------------------------------------------------------------- 4. jobs at once

OVERLAP = """
async function main(data) {
  const before = globalThis.owner ?? null;
  globalThis.owner = data.me;
  Object.prototype.owner = data.me;
  axios.defaults.headers.common["X-Owner"] = data.me;
  const response = await fetch(data.gate + "?me=" + data.me);
  return {
    before,
    after: globalThis.owner,
    proto: ({}).owner,
    header: axios.defaults.headers.common["X-Owner"],
    status: response.status,
  };
}
"""
LOOPER = "async function main(data) { globalThis.owner = 'looper'; while (true) {} }"


class Gate:
    """An egress that answers no request until ``n`` requests are waiting: the jobs that asked
    were running at the same time (one at a time, the first would wait for ever)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.urls: list[str] = []
        self.all_in = asyncio.Event()

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.urls.append(request["url"])
        if len(self.urls) >= self.n:
            self.all_in.set()
        await self.all_in.wait()
        return {"status": 200, "headers": [], "body": ""}


async def test_eight_realm_jobs_at_once_see_only_their_own_globals(
    sandbox: JavaScriptSandbox,
) -> None:
    waiting = 7
    gate = Gate(waiting)
    tenant = "realm-eight"
    gate_url = "https://gate.example.com/"

    async def overlapping(i: int) -> Outcome:
        data = {"me": f"job-{i}", "gate": gate_url}
        outcome = await sandbox.run(OVERLAP, "main", data, egress=gate, limits=ROOMY, tenant=tenant)
        return outcome

    async def looping() -> Outcome:
        return await sandbox.run(LOOPER, "main", {}, egress=gate, limits=SHORT, tenant=tenant)

    jobs = [overlapping(i) for i in range(waiting)]
    jobs.insert(3, looping())
    outcomes = await asyncio.gather(*jobs)
    looped = outcomes.pop(3)
    assert looped.runner == "realm", looped
    assert looped.error == "timeout", looped
    assert looped.stopped_by == "wall-clock", looped
    assert sorted(gate.urls) == sorted(f"{gate_url}?me=job-{i}" for i in range(waiting))
    for i, outcome in enumerate(outcomes):
        me = f"job-{i}"
        assert outcome.runner == "realm", outcome
        assert outcome.ok, outcome
        assert outcome.value == {
            "before": None,
            "after": me,
            "proto": me,
            "header": me,
            "status": 200,
        }
    after = await sandbox.run(
        "async function main() { return [globalThis.owner ?? 'clean', ({}).owner ?? 'clean'] }",
        "main",
        {},
        egress=gate,
        limits=ROOMY,
        tenant=tenant,
    )
    assert after.runner == "realm", after
    assert after.value == ["clean", "clean"], after
