// Plays the outer side of the realm tier for realm.js alone (no Worker, no host, no supervisor):
// `deno run --allow-read realm_harness.js` prints one JSON line per scenario, which
// test_js_realm_runtime.py checks. Like runtime/realm_worker.js it makes a DONT_CONTEXTIFY
// context per job, runs realm.js's setup in it, passes only strings in, pumps the realm's queue
// on its doorbell (Atomics.waitAsync), answers fetches with canned replies and timers with real
// setTimeout.
"use strict";
import vm from "node:vm";
import { types } from "node:util";
import { asExpression, workerOnlyNames } from "../../../src/voicefn/sandbox/javascript/runtime/realm_setup.js";

const repo = new URL("../../../", import.meta.url);
const jsDir = new URL("src/voicefn/sandbox/javascript/", repo);
const read = (path) => Deno.readTextFileSync(new URL(path, jsDir));
const realmScript = new vm.Script(read("runtime/realm.js"), { filename: "voicefn-realm.js" });

const SETUP_ARGS = [
  JSON.stringify(workerOnlyNames(vm.createContext(vm.constants.DONT_CONTEXTIFY))),
  asExpression("axios", read("vendor/axios.js")),
  asExpression("moment", read("vendor/moment.js")),
  asExpression("lodash", read("vendor/lodash.js")),
];

const toBase64 = (bytes) => bytes.toBase64();
// A reply as the outer builds it from a Deno Response.
async function reply(rid, url, status, body, headers = [], statusText = "") {
  const nullBody = [101, 103, 204, 205, 304].includes(status);
  const bytes = new TextEncoder().encode(body);
  const response = new Response(nullBody ? null : bytes, { status, statusText, headers });
  return {
    t: "fetch_result", rid, status, statusText: response.statusText, url, headers: [...response.headers],
    b64: nullBody ? "" : toBase64(bytes), text: await response.text(), nullBody,
  };
}
const json = (status, value, extra = []) => (m) => reply(m.rid, m.url, status, JSON.stringify(value), [["content-type", "application/json"], ...extra]);

let onUnhandled = null;
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  onUnhandled?.(event.reason);
});

/** Run one job in a fresh realm; `answer(fetchMessage)` gives a reply, a rejection, or null (never answer). */
async function run(code, { data = "null", entry = "main", max = 100000, answer = json(200, { ok: true }) } = {}) {
  const ctx = vm.createContext(vm.constants.DONT_CONTEXTIFY);
  const setup = realmScript.runInContext(ctx);
  const control = setup(...SETUP_ARGS);
  const bell = new Int32Array(control("sab"));
  const messages = [];
  const timers = new Map();
  let done = null;
  const deliver = (msg) => { if (!done) control("deliver", JSON.stringify(msg)); };
  const handle = (m) => {
    messages.push(m);
    if (m.t === "done") done = m;
    else if (m.t === "fetch") {
      Promise.resolve(answer(m)).then((r) => r && setTimeout(() => deliver(r), 0));
    } else if (m.t === "timer") {
      timers.set(m.id, setTimeout(() => { timers.delete(m.id); deliver({ t: "timer", id: m.id }); }, m.ms));
    } else if (m.t === "clear") {
      clearTimeout(timers.get(m.id));
      timers.delete(m.id);
    }
  };
  // A pending Atomics.waitAsync does not keep Deno's event loop alive by itself.
  const keepAlive = setInterval(() => {}, 1000);
  // A rejection nobody handled inside the realm ends the job, as the outer does (described by the realm).
  onUnhandled = (reason) => { done ??= { t: "unhandled", detail: control("describe", reason) }; Atomics.notify(bell, 0); };
  control("start", JSON.stringify({ code, entrypoint: entry, data, max_output_bytes: max }));
  while (!done) {
    const seen = Atomics.load(bell, 0);
    const text = control("take");
    if (typeof text !== "string") throw new Error("take returned a non-string");
    for (const m of JSON.parse(text)) handle(m);
    if (done) break;
    const wait = Atomics.waitAsync(bell, 0, seen, 10000);
    if (wait.async && (await wait.value) === "timed-out") {
      done = { t: "harness-timeout" };
    }
  }
  clearInterval(keepAlive);
  onUnhandled = null;
  for (const handle of timers.values()) clearTimeout(handle);
  return { messages, done, ctx, control, result: done.ok ? JSON.parse(done.json) : null };
}

const out = (name, value) => console.log(JSON.stringify({ name, ...value }));
const others = (messages) => messages.filter((m) => m.t !== "done");

// Every object reachable from the realm's global (own property values, accessors' functions
// without calling them, prototypes), checked from out here with this realm's Reflect: each
// prototype chain must end in the realm's Object.prototype or in a plain null-prototype object
// (never another realm's Object.prototype), and every function must inherit from the realm's
// Function.prototype with one of the realm's function constructors as its inherited
// `constructor` (the `x.constructor.constructor` escape). Reading only own property descriptors
// of objects the realm has already materialised (setup touches every global first).
function graphWalk(ctx, extraRoots) {
  const realmObjectProto = Reflect.getOwnPropertyDescriptor(ctx, "Object").value.prototype;
  const realmFns = new vm.Script(
    "[Function, (async function(){}).constructor, (function*(){}).constructor, (async function*(){}).constructor]",
  ).runInContext(ctx);
  const realmFunctionProto = realmFns[0].prototype;
  // only an Object.prototype (of some realm) has its own __proto__ accessor
  const looksLikeObjectPrototype = (o) => typeof Reflect.getOwnPropertyDescriptor(o, "__proto__")?.get === "function";
  const seen = new Set();
  const stack = [[ctx, "globalThis"], ...extraRoots];
  const badProto = [], badCtor = [];
  let functions = 0, proxies = 0;
  while (stack.length) {
    const [o, path] = stack.pop();
    if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) continue;
    seen.add(o);
    if (types.isProxy(o)) { proxies++; continue; } // its traps are job code; never poke them
    const chain = [];
    for (let p = o; p !== null && chain.length < 1000; p = Reflect.getPrototypeOf(p)) chain.push(p);
    const last = chain[chain.length - 1];
    if (last !== realmObjectProto && looksLikeObjectPrototype(last)) badProto.push(path);
    if (typeof o === "function") {
      functions++;
      let ctor;
      for (const q of chain.slice(1)) {
        const d = Reflect.getOwnPropertyDescriptor(q, "constructor");
        if (d && "value" in d) { ctor = d.value; break; }
      }
      const ok = o === realmFunctionProto || (chain.includes(realmFunctionProto) && realmFns.includes(ctor));
      if (!ok) badCtor.push(path);
    }
    stack.push([Reflect.getPrototypeOf(o), `${path}.[[Prototype]]`]);
    for (const key of Reflect.ownKeys(o)) {
      const d = Reflect.getOwnPropertyDescriptor(o, key);
      const name = `${path}.${String(key)}`;
      if ("value" in d) stack.push([d.value, name]);
      else { stack.push([d.get, `${name}<get>`]); stack.push([d.set, `${name}<set>`]); }
    }
  }
  return { objects: seen.size, functions, proxies, badProto: badProto.slice(0, 500), badCtor: badCtor.slice(0, 500) };
}

const scenarios = {
  async trivial() {
    const r = await run("async function main(d) { return { x: d.a + 1 }; }", { data: '{"a":1}' });
    out("trivial", { done: r.done, others: others(r.messages) });
  },
  async errors() {
    const cases = {
      bad_entry: await run("function main() {}", { entry: "a-b" }),
      missing: await run("const x = 1;"),
      exports: await run("module.exports.main = async (d) => d * 2;", { data: "21" }),
      throws: await run("async function main() { throw new TypeError('bad thing'); }"),
      throws_string: await run("async function main() { throw 'plain'; }"),
      syntax: await run("function main( {"),
      bigint: await run("function main() { return 1n; }"),
      func: await run("function main() { return () => 1; }"),
      too_big: await run("function main() { return 'x'.repeat(50); }", { max: 10 }),
    };
    out("errors", Object.fromEntries(Object.entries(cases).map(([k, r]) => [k, r.done])));
  },
  async console_trees() {
    const code = `
      class Foo { constructor() { this.a = 1; } }
      async function main() {
        let called = false;
        const withGetter = { plain: 2, get secret() { called = true; return 3; } };
        const cyc = { name: "c" }; cyc.self = cyc;
        const arr = [1, "two", , null]; arr.push(arr);
        const deep = { l1: { l2: { l3: { l4: { l5: { l6: { l7: 1 } } } } } } };
        console.log("text", { a: 1, b: [1, 2] }, arr, cyc, new Map([[1, "one"]]), new Set(["s"]), new Date(0),
          new RangeError("boom"), new Foo(), withGetter, deep);
        console.warn(NaN, -0, Infinity, 10n, Symbol("sy"), undefined, null, true, /re+/gi, Object.create(null));
        console.error(function named() {}, class K {}, async () => {}, function* gen() {}, async function* ag() {});
        console.info(Array.from({ length: 150 }, (_, i) => i), "y".repeat(20000));
        console.assert(true, "not shown");
        console.assert(false, "shown");
        console.trace("traced"); console.dir({ d: 1 }); console.table([1]); console.debug("dbg");
        console.group(); console.time(); console.count();
        const revoked = Proxy.revocable({}, {}); revoked.revoke();
        console.log(revoked.proxy, new Proxy({}, { ownKeys() { throw new Error("trap"); } }));
        console.log(Array.from({ length: 100 }, () => Array.from({ length: 100 }, (_, i) => i))); // 10,000 values
        return { called };
      }`;
    const r = await run(code);
    out("console_trees", { result: r.result, logs: r.messages.filter((m) => m.t === "log") });
  },
  async console_custom() {
    // Custom inspectors run inside the realm with arguments made there; the job has broken the
    // globals and prototypes the describe code could have used. What they got is kept on the
    // global, so the graph walk (from out here) proves every object of it is the realm's.
    const code = `async function main() {
      const CI = Symbol.for("Deno.customInspect"), NI = Symbol.for("nodejs.util.inspect.custom");
      const got = globalThis.got = [];
      const deno = { [CI](inspect, options) {
        got.push({ self: this === deno, inspect, options, own: inspect.constructor === Function && Object.getPrototypeOf(options) === Object.prototype,
          small: inspect({ a: "x", b: [1, -0, 10n] }), depth: options.currentDepth });
        return "deno-text";
      } };
      const node = { [NI](depth, options, inspect) {
        got.push({ self: this === node, depth, options, inspect, own: inspect.constructor === Function && Object.getPrototypeOf(options) === Object.prototype });
        return "node-text";
      } };
      let deepCalls = 0;
      const deep = { a: { b: { c: { d: { e: { f: { [CI]() { deepCalls++; return "never"; } } } } } } } };
      const throwing = { [CI]() { throw new RangeError("inspector threw"); } };
      Reflect.has = () => { throw new Error("has"); };
      Reflect.get = () => { throw new Error("get"); };
      Function.prototype.apply = () => { throw new Error("apply"); };
      Object.defineProperty(Object.prototype, "indentationLvl", { set() { throw new Error("setter"); }, configurable: true });
      String = () => "broken";
      console.log(deno, { nested: node }, deep, throwing, "after");
      return { calls: got.map((g) => [g.self, g.own, g.depth, g.small ?? null]), deepCalls };
    }`;
    const r = await run(code);
    const walk = graphWalk(r.ctx, []);
    out("console_custom", { result: r.result, done: r.done, logs: r.messages.filter((m) => m.t === "log"), walk });
  },
  async axios_get() {
    const code = `async function main() {
      const r = await axios.get("https://api.example.com/items?q=1", { headers: { "X-Test": "yes" } });
      return { status: r.status, statusText: r.statusText, data: r.data, ct: r.headers["content-type"], xh: r.headers["x-h"] };
    }`;
    const r = await run(code, { answer: json(200, { items: [1, 2] }, [["x-h", "v"]]) });
    out("axios_get", { result: r.result, done: r.done, others: others(r.messages) });
  },
  async axios_post() {
    const r = await run(`async function main() { const r = await axios.post("https://api.example.com/p", { a: 1 }); return r.data; }`,
      { answer: json(201, { created: true }) });
    out("axios_post", { result: r.result, done: r.done, fetches: r.messages.filter((m) => m.t === "fetch") });
  },
  async axios_404() {
    const r = await run(`async function main() {
      try { await axios.get("https://api.example.com/missing"); return "no error"; }
      catch (e) { return { status: e.response.status, data: e.response.data, message: e.message, code: e.code }; }
    }`, { answer: json(404, { error: "nope" }) });
    out("axios_404", { result: r.result, done: r.done });
  },
  async axios_network_error() {
    const r = await run(`async function main() {
      try { await axios.get("https://api.example.com/x"); return "no error"; }
      catch (e) { return { message: e.message, code: e.code, cause: e.cause && e.cause.name + ": " + e.cause.message }; }
    }`, { answer: (m) => ({ t: "fetch_result", rid: m.rid, reject: { name: "TypeError", message: "fetch failed: egress denied" } }) });
    out("axios_network_error", { result: r.result, done: r.done });
  },
  async abort() {
    const code = `async function main() {
      const out = {};
      const c = new AbortController();
      const p = fetch("https://api.example.com/slow", { signal: c.signal });
      c.abort();
      try { await p; out.fetch = "resolved"; } catch (e) { out.fetch = e.name + ": " + e.message; }
      try { await fetch("https://api.example.com/never", { signal: AbortSignal.abort("why") }); } catch (e) { out.pre = e; }
      const c2 = new AbortController();
      const q = axios.get("https://api.example.com/slow2", { signal: c2.signal });
      c2.abort();
      try { await q; out.axios = "resolved"; } catch (e) { out.axios = e.name + ": " + e.code; }
      return out;
    }`;
    const r = await run(code, { answer: () => null });
    out("abort", { result: r.result, done: r.done, fetches: r.messages.filter((m) => m.t === "fetch").map((m) => m.url) });
  },
  async timers() {
    const code = `async function main() {
      const order = [];
      await new Promise((resolve) => {
        setTimeout(() => { order.push("late"); resolve(); }, 20);
        setTimeout((x, y) => order.push("soon:" + x + y), 0, "a", "b");
        const gone = setTimeout(() => order.push("cleared"), 0);
        clearTimeout(gone);
        let ticks = 0;
        const iv = setInterval(() => { ticks++; order.push("tick" + ticks); if (ticks === 3) clearInterval(iv); }, 0);
      });
      setTimeout(() => {}, -5); setTimeout(() => {}, NaN); setTimeout(() => {}, "7");
      return order;
    }`;
    const r = await run(code);
    out("timers", { result: r.result, timers: r.messages.filter((m) => m.t === "timer" || m.t === "clear") });
  },
  async libraries() {
    const code = `async function main() {
      const kind = (n) => typeof Object.getOwnPropertyDescriptor(globalThis, n).get;
      const before = { axios: kind("axios"), moment: kind("moment"), _: kind("_") };
      const chunk = _.chunk([1, 2, 3], 2);
      const year = moment.utc(0).format("YYYY-MM-DD");
      const after = { moment: "value" in Object.getOwnPropertyDescriptor(globalThis, "moment"),
        _: "value" in Object.getOwnPropertyDescriptor(globalThis, "_"), axiosStillLazy: kind("axios") };
      return { before, after, chunk, year, version: _.VERSION, same: _ === globalThis._ };
    }`;
    const r = await run(code);
    out("libraries", { result: r.result, done: r.done, others: others(r.messages) });
  },
  async hardening() {
    const code = `async function main() {
      const out = {};
      try { Error.prepareStackTrace = (e, cs) => cs; } catch (e) { out.assign = e.name; }
      try { Object.defineProperty(Error, "prepareStackTrace", { value: () => 1 }); } catch (e) { out.define = e.name; }
      out.still = Error.prepareStackTrace === undefined;
      out.stack = typeof new Error("x").stack;
      out.absent = ["Atomics.waitAsync", "FinalizationRegistry", "WebAssembly"].map((name) => {
        try { return typeof eval(name); } catch (e) { return e.message; }
      });
      out.owned = [Object.hasOwn(Atomics, "waitAsync"), Object.getOwnPropertyDescriptor(globalThis, "WebAssembly")?.get !== undefined];
      out.present = [typeof queueMicrotask, typeof eval, typeof Temporal, typeof Atomics.notify];
      return out;
    }`;
    const r = await run(code);
    out("hardening", { result: r.result, done: r.done, others: others(r.messages) });
  },
  async worker_only() {
    const code = `async function main() {
      const out = {};
      try { out.url = typeof URL; } catch (e) { out.url = e.message; }
      globalThis.Deno = 5;
      out.deno = Deno;
      return out;
    }`;
    const r = await run(code);
    out("worker_only", { result: r.result, others: others(r.messages) });
    // a library that really needs one reports it too: axios parses a URL with a port with URL,
    // and the realm's own URL (for the libraries) takes only plain http(s) URLs, not IPv6 hosts
    const port = await run(`async function main() { try { await axios.get("https://[::1]:8443/x"); } catch (e) { return e.message; } }`);
    out("worker_only_library", { result: port.result, others: others(port.messages) });
  },
  async base64() {
    const code = `async function main() {
      return [btoa("hi\u00e9"), btoa(""), atob(" aGk=\\n"), atob("aGk"), atob("")];
    }`;
    out("base64", { result: (await run(code)).result });
    // what a Worker refuses with InvalidCharacterError goes to a Worker (which throws its own)
    for (const [label, call] of [["btoa", 'btoa("\u20ac")'], ["atob", 'atob("a")'], ["atob_char", 'atob("a*bc")']]) {
      const r = await run(`async function main() { try { return ${call}; } catch (e) { return e.message; } }`);
      out(`base64_${label}`, { result: r.result, others: others(r.messages) });
    }
  },
  async web_classes() {
    const code = `async function main() {
      const out = {};
      const r = new Response("hé", { status: 201, headers: { "X-A": "1" } });
      out.response = [r.status, r.ok, r.statusText, r.type, r.url, r.redirected, r.body, r.headers.get("content-type"), r.bodyUsed];
      out.text = await r.clone().text();
      out.bytes = Array.from(new Uint8Array(await r.arrayBuffer()));
      try { await r.text(); } catch (e) { out.again = e.name + ": " + e.message; }
      try { r.clone(); } catch (e) { out.cloneUsed = e.message; }
      try { new Response("x", { status: 204 }); } catch (e) { out.nullStatus = e.name + ": " + e.message; }
      try { new Response("x", { status: 99 }); } catch (e) { out.badStatus = e.name; }
      out.decoded = await new Response(new Uint8Array([0xe2, 0x82, 0xff, 0x41])).text();
      out.json = await new Response('{"a":[1]}').json();
      const h = new Headers([["B", "1"], ["a", " 2 "]]);
      h.append("b", "3"); h.append("Set-Cookie", "x"); h.append("set-cookie", "y"); h.set("c", "4"); h.delete("C");
      out.headers = [...h];
      out.headersMisc = [h.get("b"), h.has("A"), h.has("z"), Object.prototype.toString.call(h), [...h.keys()].join()];
      try { new Headers([["a b", "c"]]); } catch (e) { out.badName = e.name + ": " + e.message; }
      const req = new Request("https://x.test/p", { method: "post", body: new Uint8Array([104, 105]) });
      out.request = [req.method, req.url, await req.clone().text(), Object.prototype.toString.call(req)];
      try { new Request("https://x.test/", { body: "x" }); } catch (e) { out.getBody = e.message; }
      out.signal = [AbortSignal.abort().reason.name, AbortSignal.abort().reason.message];
      const t = AbortSignal.timeout(0);
      await new Promise((resolve) => t.addEventListener("abort", resolve));
      out.timeout = [t.aborted, t.reason.name];
      const c = new AbortController(); const seen = [];
      c.signal.onabort = () => seen.push("onabort");
      c.signal.addEventListener("abort", (e) => seen.push(e.type));
      c.abort(); c.abort();
      out.events = seen;
      try { c.signal.throwIfAborted(); } catch (e) { out.thrown = e.name; }
      try { new AbortSignal(); } catch (e) { out.illegal = e.message; }
      const ab = await fetch("https://x.test/b", { method: "PUT", body: new Uint16Array([1]).buffer });
      out.fetched = [ab.type, ab.url, ab.status, await ab.json()];
      return out;
    }`;
    const r = await run(code);
    out("web_classes", { result: r.result, done: r.done, fetches: r.messages.filter((m) => m.t === "fetch") });
  },
  async pollution() {
    // A job that breaks the prototypes this runtime's output would go through.
    const code = `async function main() {
      Object.prototype.toJSON = () => "polluted";
      Object.defineProperty(Array.prototype, "0", { set() { throw new Error("setter"); }, configurable: true });
      Array.prototype[Symbol.iterator] = function () { throw new Error("iter"); };
      Array.prototype.push = () => { throw new Error("push"); };
      JSON.stringify = () => "broken";
      Promise.prototype.then = function () { throw new Error("then"); };
      console.log({ a: 1 }, [2]);
      setTimeout(() => {}, 1);
      return 7;
    }`;
    const r = await run(code);
    out("pollution", { done: r.done, others: others(r.messages) });
  },
  async control() {
    const r = await run("function main() { return 1; }");
    const c = r.control;
    const vals = [c("bogus"), c("deliver", "not json"), c("deliver", '{"t":"timer","id":99}'),
      c("deliver", '{"t":"fetch_result","rid":5}'), c("start", "{}"), c("take"), c("describe", undefined)];
    let threw = false;
    try { c("describe", new vm.Script("({ get name() { throw 1 } })").runInContext(r.ctx)); } catch { threw = true; }
    out("control", { values: vals.map((v) => (v === undefined ? "undefined" : v)), threw });
  },
  async uncaught() {
    const r = await run(`async function main() { setTimeout(() => { throw new SyntaxError("in timer"); }, 0); await new Promise((r) => setTimeout(r, 5)); return 1; }`);
    out("uncaught", { others: others(r.messages).filter((m) => m.t === "uncaught") });
  },
  async graph_walk() {
    const code = `async function main() {
      void axios.VERSION; void _.VERSION; void moment.version;
      const response = await fetch("https://api.example.com/g", { headers: { a: "b" } });
      await response.text();
      let error = null;
      try { await response.text(); } catch (e) { error = e; }
      const aborted = new AbortController(); aborted.abort();
      globalThis.keep = { response, error, headers: new Headers({ x: "y" }), controller: aborted,
        made: new Response("z"), request: new Request("https://x.test/"), reason: aborted.signal.reason,
        axiosResponse: await axios.get("https://api.example.com/a"), timeout: AbortSignal.timeout(1),
        entries: new Headers({ q: "r" }).entries(), axiosError: await axios.get("https://api.example.com/b").catch((e) => e) };
      try { URL; } catch (e) { globalThis.keep.trapError = e; }
      return Object.keys(globalThis.keep).length;
    }`;
    let n = 0;
    const r = await run(code, { answer: (m) => (++n === 3 ? json(500, { no: 1 })(m) : json(200, { yes: 1 })(m)) });
    const walk = graphWalk(r.ctx, [[r.control("sab"), "sab"]]);
    out("graph_walk", { result: r.result, done: r.done, walk });
  },
  async walk_controls() {
    // The walk can fail: an outer object and an outer function put on a realm's global are found,
    // and so is V8's lazily made Temporal of a realm that realm.js did not set up (the walk,
    // reading it first from out here, makes it with this realm's intrinsics).
    const r = await run("function main() { return 1; }");
    r.ctx.planted = { x: 1 };
    r.ctx.plantedFn = () => 1;
    const planted = graphWalk(r.ctx, []);
    const bare = graphWalk(vm.createContext(vm.constants.DONT_CONTEXTIFY), []);
    out("walk_controls", { planted: [planted.badProto, planted.badCtor], bare: [bare.badProto, bare.badCtor] });
  },
};

const only = Deno.args.length ? Deno.args : Object.keys(scenarios);
for (const name of only) {
  try {
    await scenarios[name]();
  } catch (err) {
    out(name, { harness_error: String(err?.stack ?? err) });
  }
}
