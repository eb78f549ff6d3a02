// voicefn JavaScript sandbox: a realm Worker (`deno.permissions: "none"`), the fast path.
//
// A fresh Worker per job costs ~52 ms of CPU (ISOLATION.md); a fresh V8 context (a realm) in a
// Worker that stays costs ~0.5 ms, and the libraries evaluate in it in ~1-4 ms, because the
// isolate has compiled them already. So this Worker runs one job at a time, each in a realm
// made for it (`vm.createContext(DONT_CONTEXTIFY)`: a new global object and new intrinsics) and
// dropped when the job ends; the next job gets a new one.
//
// The rule that keeps jobs apart: nothing of this (outer) realm is ever reachable from inside a
// job's realm. An outer object would give `x.constructor.constructor` = this realm's Function,
// with which a job could leave code behind for the next. So only primitives cross: realm.js
// (evaluated in the realm first) returns one function, `control(op, arg)`, that takes and returns
// strings; the realm queues its messages (logs, fetches, timers, its result) and rings a doorbell
// (a SharedArrayBuffer it made itself: Atomics.notify) that this side waits on with
// Atomics.waitAsync. No outer function is ever passed in, so the realm cannot call out. What the
// realm lacks (Deno, fetch's real implementation, timers) this side does for it, with the same
// code paths the one-job Worker (worker.js) uses: Deno's Request builds and checks every
// request, Deno's Response decodes every body, Deno.inspect formats every log line.
//
// A job that reads a global that a Worker has and the realm lacks (realm.js traps every such
// name) is handed back to the host to run in a fresh Worker, if nothing it did has left the
// Worker yet; the host also decides, by the names its code mentions, which jobs come here.
"use strict";
import { asExpression, workerOnlyNames } from "./realm_setup.js";
import { scrubWorker } from "./scrub.js";

// -- taken before the scrub (it removes process.getBuiltinModule)
const vm = process.getBuiltinModule("node:vm");
const post = globalThis.postMessage.bind(globalThis);
const addListener = globalThis.addEventListener.bind(globalThis);
const inspect = Deno.inspect;
const fromBase64 = Uint8Array.fromBase64.bind(Uint8Array);
const toBase64 = Function.prototype.call.bind(Uint8Array.prototype.toBase64);
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const MAX_REQUEST_BODY = 4 << 20;
const MAX_TIMERS = 10000;
const MAX_TIMER_MS = 2 ** 31 - 1;
//: a realm Worker is replaced after this many jobs (bounds anything that grows in the isolate)
const MAX_JOBS_PER_WORKER = 500;

function clip(text, n) {
  return text.length > n ? text.slice(0, n) + "…" : text;
}

// -- log lines: the realm describes each value as a tree of primitives; it is rebuilt here and
// formatted by Deno.inspect, as worker.js formats the value itself.
const classes = new Map();
function namedClass(name) {
  let C = classes.get(name);
  if (C === undefined) {
    C = { [name]: class {} }[name];
    if (classes.size < 256) classes.set(name, C);
  }
  return C;
}

function namedFunction(name, kind) {
  const make = {
    class: () => class {},
    async: () => async function () {},
    generator: () => function* () {},
    asyncgenerator: () => async function* () {},
  }[kind] ?? (() => function () {});
  const f = make();
  Object.defineProperty(f, "name", { value: typeof name === "string" ? name : "" });
  return f;
}

function rebuild(node, refs, depth = 0) {
  if (node === null || typeof node !== "object" || depth > 64) return undefined;
  switch (node.t) {
    case "str": return String(node.v);
    case "num": return node.v === "-0" ? -0 : Number(node.v);
    case "big": try { return BigInt(node.v); } catch { return undefined; }
    case "bool": return node.v === true;
    case "null": return null;
    case "undef": return undefined;
    case "sym": return Symbol(typeof node.v === "string" ? node.v : undefined);
    case "fn": return namedFunction(node.name, node.kind);
    case "date": return new Date(typeof node.v === "number" ? node.v : NaN);
    case "re": try { return new RegExp(String(node.src), String(node.flags)); } catch { return undefined; }
    case "err": {
      const e = new Error(String(node.message ?? ""));
      e.name = String(node.name ?? "Error");
      e.stack = String(node.stack ?? `${e.name}: ${e.message}`);
      return e;
    }
    case "cyc": return refs.get(node.id);
    case "cut": return node.kind === "arr" ? [] : (node.cls ? Object.create(namedClass(String(node.cls)).prototype) : {});
    case "arr": {
      const items = Array.isArray(node.items) ? node.items : [];
      const more = Number.isSafeInteger(node.more) && node.more > 0 ? Math.min(node.more, 1e9) : 0;
      const a = [];
      refs.set(node.id, a);
      for (const item of items) a.push(rebuild(item, refs, depth + 1));
      if (more) a.length = items.length + more;
      return a;
    }
    case "map": case "set": {
      const c = node.t === "map" ? new Map() : new Set();
      refs.set(node.id, c);
      const list = Array.isArray(node.entries ?? node.items) ? (node.entries ?? node.items) : [];
      for (const e of list) {
        if (node.t === "map") c.set(rebuild(e?.[0], refs, depth + 1), rebuild(e?.[1], refs, depth + 1));
        else c.add(rebuild(e, refs, depth + 1));
      }
      return c;
    }
    case "obj": {
      const o = node.nullproto === true ? Object.create(null)
        : typeof node.cls === "string" && node.cls ? Object.create(namedClass(node.cls).prototype) : {};
      refs.set(node.id, o);
      for (const entry of Array.isArray(node.entries) ? node.entries : []) {
        if (!Array.isArray(entry) || typeof entry[0] !== "string") continue;
        const [key, value] = entry;
        if (value?.t === "acc") {
          const accessor = {};
          if (value.get) accessor.get = () => undefined;
          if (value.set) accessor.set = () => {};
          Object.defineProperty(o, key, { ...accessor, enumerable: true, configurable: true });
        } else {
          Object.defineProperty(o, key, { value: rebuild(value, refs, depth + 1), enumerable: true, writable: true, configurable: true });
        }
      }
      return o;
    }
    default: return undefined;
  }
}

function format(parts) {
  let out = "";
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    let piece;
    if (p !== null && typeof p === "object" && typeof p.s === "string") {
      piece = p.s;
    } else {
      try {
        piece = inspect(rebuild(p?.v, new Map()), { depth: 4, colors: false, iterableLimit: 50, strAbbreviateSize: 2000 });
      } catch {
        piece = "[unprintable]";
      }
    }
    out += (i ? " " : "") + piece;
    if (out.length > 4000) break;
  }
  return clip(out, 4000);
}

// -- setup (the host sends the sources once: this Worker may read no file)
let realmScript = null;
let setupArgs = null;

function init(msg) {
  realmScript = new vm.Script(String(msg.realm), { filename: "voicefn-realm.js" });
  const bare = vm.createContext(vm.constants.DONT_CONTEXTIFY);
  const workerOnly = JSON.stringify(workerOnlyNames(bare));
  setupArgs = [
    workerOnly,
    asExpression("axios", String(msg.axios)),
    asExpression("moment", String(msg.moment)),
    asExpression("lodash", String(msg.lodash)),
  ];
  post({ t: "realm_ready", worker_only: JSON.parse(workerOnly) });
}

// -- one job
let job = null;
let jobsRun = 0;

function endJob(result) {
  if (job === null || job.over) return;
  const j = job;
  j.over = true;
  for (const handle of j.timers.values()) clearTimeout(handle);
  j.timers.clear();
  j.pending.clear();
  if (result.t === "fallback") {
    post(result); // nothing of it left the Worker: the host runs it in a fresh one
  } else {
    flushLogs(j);
    post(result);
  }
  job = null;
  jobsRun += 1;
  post({ t: "idle", retire: jobsRun >= MAX_JOBS_PER_WORKER });
}

// Log lines wait here until the job's first request leaves the Worker (or it ends), so a job
// handed back to the host for a fresh Worker has not logged anything twice.
function flushLogs(j) {
  for (const line of j.logs) post(line);
  j.logs.length = 0;
  j.sent = true;
}

function deliver(j, msg) {
  if (j.over) return;
  try {
    j.control("deliver", JSON.stringify(msg));
  } catch {
    endJob({ t: "done", ok: false, error: "exception", detail: "the sandbox's realm failed" });
  }
}

async function runInRealm(msg) {
  job = { over: false, control: null, timers: new Map(), pending: new Set(), fetches: new Map(), logs: [], sent: false };
  const j = job;
  const ctx = vm.createContext(vm.constants.DONT_CONTEXTIFY);
  // Only this trusted code has run in the realm when these are read; nothing of ours goes in.
  const setup = realmScript.runInContext(ctx);
  j.control = setup(...setupArgs);
  const view = new Int32Array(j.control("sab"));
  j.control("start", JSON.stringify({
    code: msg.code,
    entrypoint: msg.entrypoint,
    data: msg.data,
    max_output_bytes: msg.max_output_bytes,
  }));
  // Pump: whatever the realm queued, each time its doorbell rings.
  while (!j.over) {
    const seen = Atomics.load(view, 0);
    drain(j);
    if (j.over) break;
    const wait = Atomics.waitAsync(view, 0, seen);
    if (wait.async) await wait.value;
  }
}

function drain(j) {
  let batch;
  try {
    const text = j.control("take");
    batch = typeof text === "string" ? JSON.parse(text) : null;
  } catch {
    batch = null;
  }
  if (!Array.isArray(batch)) {
    endJob({ t: "done", ok: false, error: "exception", detail: "the sandbox's realm failed" });
    return;
  }
  for (const m of batch) {
    if (j.over) return;
    if (m !== null && typeof m === "object") onRealmMessage(j, m);
  }
}

function onRealmMessage(j, m) {
  switch (m.t) {
    case "log": {
      const line = { t: "log", level: typeof m.level === "string" ? m.level : "log", message: format(Array.isArray(m.parts) ? m.parts : []) };
      if (j.sent) post(line);
      else if (j.logs.length < 10000) j.logs.push(line);
      return;
    }
    case "fetch":
      if (Number.isSafeInteger(m.rid) && m.rid >= 0 && !j.pending.has(m.rid)) {
        j.pending.add(m.rid);
        realmFetch(j, m);
      }
      return;
    case "timer": {
      if (!Number.isSafeInteger(m.id) || j.timers.has(m.id)) return;
      if (j.timers.size >= MAX_TIMERS) {
        endJob({ t: "done", ok: false, error: "exception", detail: `the function set more than ${MAX_TIMERS} timers at once` });
        return;
      }
      const ms = Number.isFinite(m.ms) ? Math.min(Math.max(m.ms, 0), MAX_TIMER_MS) : 0;
      j.timers.set(m.id, setTimeout(() => {
        j.timers.delete(m.id);
        deliver(j, { t: "timer", id: m.id });
      }, ms));
      return;
    }
    case "clear": {
      const handle = j.timers.get(m.id);
      if (handle !== undefined) {
        clearTimeout(handle);
        j.timers.delete(m.id);
      }
      return;
    }
    case "uncaught":
      endJob({ t: "done", ok: false, error: "exception", detail: clip("Uncaught " + String(m.detail ?? "error"), 600) });
      return;
    case "worker_only": {
      const name = clip(String(m.name ?? ""), 100);
      if (!j.sent) {
        endJob({ t: "fallback", name });
      } else {
        endJob({
          t: "done", ok: false, error: "exception",
          detail: `ReferenceError: ${name} is not defined in this sandbox's fast path (the function read it after its first request); its next runs use a Worker, where it is`,
          worker_only: name,
        });
      }
      return;
    }
    case "done": {
      const result = { t: "done", ok: m.ok === true };
      for (const k of ["json", "error", "detail", "layer"]) if (typeof m[k] === "string") result[k] = m[k];
      endJob(result);
      return;
    }
    default:
      return;
  }
}

// The request as worker.js's fetch makes it (Deno's Request: same checks, same errors), the
// reply as its Response reads it; the realm gets only strings and numbers.
async function realmFetch(j, m) {
  const reject = (err) => {
    j.pending.delete(m.rid);
    deliver(j, { t: "fetch_result", rid: m.rid, reject: { name: String(err?.name ?? "TypeError"), message: String(err?.message ?? err) } });
  };
  let request;
  let body = new Uint8Array(0);
  try {
    const init = { method: String(m.method ?? "GET"), headers: Array.isArray(m.headers) ? m.headers : [] };
    if (m.body !== null && typeof m.body === "object") {
      init.body = typeof m.body.text === "string" ? m.body.text : fromBase64(String(m.body.b64 ?? ""));
    }
    request = new Request(String(m.url ?? ""), init);
    if (request.body !== null) {
      body = new Uint8Array(await request.arrayBuffer());
      if (body.length > MAX_REQUEST_BODY) throw new TypeError(`fetch failed: the request body is larger than ${MAX_REQUEST_BODY} bytes`);
    }
  } catch (err) {
    reject(err);
    return;
  }
  if (j.over) return;
  if (!j.sent) flushLogs(j);
  j.fetches.set(m.rid, request.url);
  post({ t: "fetch", rid: m.rid, method: request.method, url: request.url, headers: [...request.headers], body: toBase64(body) });
}

async function onFetchResult(j, reply) {
  const url = j.fetches.get(reply.rid);
  if (url === undefined) return;
  j.fetches.delete(reply.rid);
  j.pending.delete(reply.rid);
  const fail = (message) => deliver(j, { t: "fetch_result", rid: reply.rid, reject: { name: "TypeError", message } });
  if (typeof reply.error === "string") return fail(`fetch failed: ${reply.error}`);
  const status = reply.status;
  if (!Number.isInteger(status) || status < 200 || status > 599) return fail(`fetch failed: unsupported response status ${status}`);
  let bytes;
  try {
    bytes = fromBase64(typeof reply.body === "string" ? reply.body : "");
  } catch {
    return fail("fetch failed: the response body was malformed");
  }
  let response;
  let text;
  try {
    response = new Response(NULL_BODY.has(status) ? null : bytes, { status, headers: Array.isArray(reply.headers) ? reply.headers : [] });
    text = await response.clone().text();
  } catch (err) {
    return fail(String(err?.message ?? err));
  }
  if (j.over) return;
  deliver(j, {
    t: "fetch_result",
    rid: reply.rid,
    status,
    statusText: response.statusText,
    url,
    headers: [...response.headers],
    b64: NULL_BODY.has(status) ? "" : toBase64(bytes),
    text,
    nullBody: NULL_BODY.has(status),
  });
}

// An error or rejection nobody caught inside the realm (a queueMicrotask callback, a promise the
// job left unhandled): the job fails as it would in its own Worker. Never touch the value itself
// here (it is the realm's): the realm describes it.
addListener("unhandledrejection", (event) => {
  event.preventDefault();
  const j = job;
  if (j === null || j.over) return;
  let detail = "an error";
  try {
    const d = j.control("describe", event.reason);
    if (typeof d === "string") detail = d;
  } catch { /* keep the generic text */ }
  endJob({ t: "done", ok: false, error: "exception", detail: clip("Uncaught (in promise) " + detail, 600) });
});
addListener("error", (event) => {
  event.preventDefault();
  const j = job;
  if (j === null || j.over) return;
  const message = typeof event.message === "string" ? event.message : "Uncaught error";
  endJob({ t: "done", ok: false, error: "exception", detail: clip(message, 600) });
});

addListener("message", (event) => {
  const msg = event.data;
  if (msg === null || typeof msg !== "object") return;
  if (msg.t === "fetch_result") {
    if (job !== null && !job.over) onFetchResult(job, msg);
  } else if (msg.t === "job" && job === null && realmScript !== null) {
    runInRealm(msg).catch(() => {
      endJob({ t: "done", ok: false, error: "exception", detail: "the sandbox's realm failed" });
    });
  } else if (msg.t === "init" && realmScript === null) {
    try {
      init(msg);
    } catch (err) {
      post({ t: "realm_failed", detail: clip(String(err?.message ?? err), 600) });
    }
  }
});

scrubWorker();
