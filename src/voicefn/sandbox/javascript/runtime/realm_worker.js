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
import { format, uncaughtText } from "./realm_console.js";
import { asExpression, workerOnlyNames } from "./realm_setup.js";
import { scrubWorker } from "./scrub.js";

// -- taken before the scrub (it removes process.getBuiltinModule)
const vm = process.getBuiltinModule("node:vm");
const post = globalThis.postMessage.bind(globalThis);
const addListener = globalThis.addEventListener.bind(globalThis);
const fromBase64 = Uint8Array.fromBase64.bind(Uint8Array);
const toBase64 = Function.prototype.call.bind(Uint8Array.prototype.toBase64);
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const MAX_REQUEST_BODY = 4 << 20;
const MAX_TIMERS = 10000;
const MAX_TIMER_MS = 2 ** 31 - 1;
// a realm Worker is replaced after this many jobs (bounds anything that grows in the isolate)
const MAX_JOBS_PER_WORKER = 1000;
const RETIRE_NOTICE = 50; // jobs before its last: the host starts its successor then

function clip(text, n) {
  return text.length > n ? text.slice(0, n) + "…" : text;
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
  prepareSoon();
}

// The next jobs' realms are made ahead, when this Worker has nothing else to do (after a job, one
// at a time on a timer of their own, up to PREPARED): a job then starts in a realm that only
// realm.js's setup has run in, without paying its ~1 ms on its own path (a burst of 20 jobs on
// the tenant's one core pays it before the burst). Each is used by one job only, like any realm.
const PREPARED = 3;
const prepared = [];
let preparing = null;

function makeRealm() {
  const ctx = vm.createContext(vm.constants.DONT_CONTEXTIFY);
  // Only this trusted code has run in the realm when these are read; nothing of ours goes in.
  const setup = realmScript.runInContext(ctx);
  const control = setup(...setupArgs);
  return { control, doorbell: control("sab"), ring: control("ring") };
}

function prepareSoon() {
  if (prepared.length >= PREPARED || preparing !== null || realmScript === null) return;
  preparing = setTimeout(() => {
    preparing = null;
    if (job !== null) return; // the job's end prepares again
    prepared.push(makeRealm());
    prepareSoon();
  }, 0);
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
  j.fetches.clear();
  job = null; // from here on this Worker takes the next job: the host may send it at once
  jobsRun += 1;
  // (a fallback: nothing of it left the Worker, the host runs it in a fresh one)
  post({ ...result, retire: jobsRun >= MAX_JOBS_PER_WORKER });
  // so that the host has its successor ready when it goes
  if (jobsRun === MAX_JOBS_PER_WORKER - RETIRE_NOTICE) post({ t: "retiring" });
  prepareSoon();
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
  // `sent`: one of its requests left this Worker (a fallback to a fresh Worker is no longer safe)
  // `fetches`: rid -> the URL it went to (null while the request is still being built)
  job = { over: false, control: null, timers: new Map(), fetches: new Map(), sent: false };
  const j = job;
  const realm = prepared.shift() ?? makeRealm();
  j.control = realm.control;
  const view = new Int32Array(realm.doorbell);
  // The realm's log buffer, for the host: it reads the lines this side never passed on if the
  // job spins until its deadline (then this Worker never runs again).
  j.ringHead = new Int32Array(realm.ring, 0, 2);
  post({ t: "ring", sab: realm.ring });
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
      // The host holds a realm job's lines until its first request goes out (a job handed back
      // for a fresh Worker must not log twice), and across a timeout (this Worker is gone then).
      post({ t: "log", level: typeof m.level === "string" ? m.level : "log", message: format(Array.isArray(m.parts) ? m.parts : []) });
      if (Number.isSafeInteger(m.end) && m.end > 0) Atomics.store(j.ringHead, 1, m.end);
      return;
    }
    case "fetch":
      if (Number.isSafeInteger(m.rid) && m.rid >= 0 && !j.fetches.has(m.rid)) {
        j.fetches.set(m.rid, null);
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
      endJob({ t: "done", ok: false, error: "exception", detail: clip("Uncaught " + uncaughtText(m), 600) });
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

// A one-job Worker resolves a relative URL against its own location (worker.js): so does this,
// with the same TypeError for what is no URL ("Invalid URL: '…' with base '…/worker.js'").
const WORKER_LOCATION = new URL("../worker.js", import.meta.url).href;
function asInWorker(url) {
  return new URL(url, WORKER_LOCATION).href;
}

// The request as worker.js's fetch makes it (Deno's Request: same checks, same errors), the
// reply as its Response reads it; the realm gets only strings and numbers.
async function realmFetch(j, m) {
  const reject = (err) => {
    j.fetches.delete(m.rid);
    deliver(j, { t: "fetch_result", rid: m.rid, reject: { name: String(err?.name ?? "TypeError"), message: String(err?.message ?? err) } });
  };
  let request;
  let body = new Uint8Array(0);
  try {
    const init = { method: String(m.method ?? "GET"), headers: Array.isArray(m.headers) ? m.headers : [] };
    if (m.body !== null && typeof m.body === "object") {
      init.body = typeof m.body.text === "string" ? m.body.text : fromBase64(String(m.body.b64 ?? ""));
    }
    request = new Request(asInWorker(String(m.url ?? "")), init);
    if (request.body !== null) {
      body = new Uint8Array(await request.arrayBuffer());
      if (body.length > MAX_REQUEST_BODY) throw new TypeError(`fetch failed: the request body is larger than ${MAX_REQUEST_BODY} bytes`);
    }
  } catch (err) {
    reject(err);
    return;
  }
  if (j.over) return;
  j.sent = true;
  j.fetches.set(m.rid, request.url);
  post({ t: "fetch", rid: m.rid, method: request.method, url: request.url, headers: [...request.headers], body: toBase64(body) });
}

async function onFetchResult(j, reply) {
  const url = j.fetches.get(reply.rid);
  if (typeof url !== "string") return; // not one of this job's requests that went out
  j.fetches.delete(reply.rid);
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
  let shape = null;
  try {
    const text = j.control("uncaught", event.reason);
    if (typeof text === "string") shape = JSON.parse(text);
  } catch { /* the generic text */ }
  endJob({ t: "done", ok: false, error: "exception", detail: clip("Uncaught (in promise) " + uncaughtText(shape), 600) });
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
  } else if (msg.t === "ping") {
    post({ t: "pong" }); // the host asks whether this thread still turns (a job past its end)
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
