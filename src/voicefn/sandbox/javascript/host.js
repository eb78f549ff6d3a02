// voicefn JavaScript sandbox: the host (main isolate) of one tenant's Deno process.
//
// Trusted code, but it shares a process with hostile workers, so the Python supervisor treats
// everything it sends as untrusted. It connects to the supervisor over a Unix socket (the only
// thing it may reach: `--allow-net=unix:<socket>`), keeps pre-warmed Workers ready
// (`deno.permissions: "none"`), runs each job in a fresh Worker (a tenant's jobs may run at
// once, each in its own), forwards the job's fetch() calls and console output, and terminates
// the Worker when the job ends or at its deadline.
// `deno run host.js <socket> <spares> <max>`: it keeps <spares> (1-8) Workers pre-warmed, more
// while the tenant's recent bursts of jobs were larger, and never holds more than <max> Workers
// (at most 24), running and ready together. (The supervisor passes <max> = 20: what fits in the
// process's memory beside a job's heap, ~12 MB a Worker.)
// The supervisor decides every verdict (stopped_by) itself; `layer` here is only a hint.
//
// Frames on the socket, both ways: 4-byte big-endian length, then UTF-8 JSON.
"use strict";

import { format as formatRealmLog } from "./runtime/realm_console.js";

const SOCKET = Deno.args[0];
const WORKER_URL = new URL("./worker.js", import.meta.url);
const REALM_WORKER_URL = new URL("./runtime/realm_worker.js", import.meta.url);
const MAX_IN_FRAME = 64 << 20; // from the supervisor: code + data + response bodies
const MAX_LOG_MESSAGE = 4000;
const MAX_REQUEST_BODY_B64 = 6 << 20;
const MAX_URL = 8192;
const MAX_HEADERS = 100;
const MAX_HEADER_CHARS = 8192;
const METHOD = /^[A-Z]{1,16}$/;
const LEVELS = new Set(["log", "info", "debug", "warn", "error"]);

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

const conn = await Deno.connect({ transport: "unix", path: SOCKET });

// ------------------------------------------------------------------------------- framing

let writing = Promise.resolve();

function send(msg) {
  const body = encoder.encode(JSON.stringify(msg));
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  writing = writing.then(async () => {
    let off = 0;
    while (off < frame.length) off += await conn.write(frame.subarray(off));
  }).catch(() => Deno.exit(70));
  return writing;
}

async function readExactly(n) {
  const buf = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(buf.subarray(off));
    if (got === null) return null;
    off += got;
  }
  return buf;
}

async function* frames() {
  for (;;) {
    const head = await readExactly(4);
    if (head === null) return;
    const len = new DataView(head.buffer).getUint32(0);
    if (len > MAX_IN_FRAME) throw new Error("frame too large");
    const body = await readExactly(len);
    if (body === null) return;
    yield JSON.parse(decoder.decode(body));
  }
}

// ------------------------------------------------------------------------------- workers

// `now`: a job is waiting for this Worker (the pool was empty): it skips its rehearsal, which
// would only delay that job.
function spawnWorker(now = false) {
  const worker = new Worker(WORKER_URL, {
    type: "module",
    name: now ? "voicefn-job-now" : "voicefn-job",
    deno: { permissions: "none" },
  });
  const slot = { worker, job: null, dead: false };
  slot.ready = new Promise((resolve, reject) => {
    slot.resolveReady = resolve;
    slot.rejectReady = reject;
  });
  listen(slot, onWorkerMessage, (detail) => {
    slot.dead = true;
    slot.rejectReady(new Error(detail));
  });
  return slot;
}

// A Worker's messages go to `onMessage`; a message that cannot be read, or an uncaught error or
// unhandled rejection inside it (never let one reach the host), ends its job, or, between jobs,
// goes to `onIdleError(detail)`.
function listen(slot, onMessage, onIdleError) {
  const worker = slot.worker;
  worker.onmessage = (event) => onMessage(slot, event.data);
  worker.onmessageerror = (event) => {
    event.preventDefault?.();
    if (slot.job) finish(slot.job, { ok: false, error: "invalid_output", detail: "a message from the function could not be read" });
  };
  worker.onerror = (event) => {
    event.preventDefault();
    const detail = clip(String(event.message ?? "uncaught error"), 600);
    if (slot.job) finish(slot.job, { ok: false, error: "exception", detail, layer: layerOf(detail) });
    else onIdleError(detail);
  };
}

// Pre-warmed Workers (libraries evaluated, no job yet), oldest first. A job takes one that no
// job has touched; it is terminated when the job ends. The pool is refilled in the background,
// one Worker at a time (each costs tens of ms of CPU), so a burst of jobs finds them ready.
const SPARES = Math.min(Math.max(Number.parseInt(Deno.args[1] ?? "1", 10) || 1, 1), 8);
// A refill starts once no job has started or ended for this long: jobs called back to back take
// the pool's Workers without a refill competing for the tenant's CPU quota (the pool refills in
// the pause after them); an empty pool still makes a Worker at once for the job that needs it.
const REFILL_QUIET_MS = 15;
// The pool is sized by demand: a burst (jobs that started with no quiet of REFILL_QUIET_MS
// between them, back to back, or while others of the burst still ran: concurrent calls)
// larger than SPARES keeps that many Workers ready until no such burst came for DEMAND_MS;
// then the extra Workers are terminated (each holds memory). Ready and running Workers together
// stay within MAX_WORKERS (running jobs leave room for fewer ready ones), so parallel jobs plus
// a demand-sized pool fit in the process's memory.
const MAX_WORKERS = Math.min(Math.max(Number.parseInt(Deno.args[2] ?? "24", 10) || 24, 1), 24);
const DEMAND_MS = 30000;
const spares = [];
let warming = null;
let lastActivity = 0;
let refillTimer = null;
let expiryTimer = null;
let burst = 0; // jobs started since the last quiet moment
let demand = 0; // the largest recent burst
let demandAt = -Infinity;

// How many ready Workers the pool should hold now: SPARES or the recent demand, within what
// the running jobs (each holds a Worker, or is about to) leave of MAX_WORKERS.
function poolSize() {
  if (performance.now() - demandAt > DEMAND_MS) demand = 0;
  return Math.max(Math.min(Math.max(SPARES, demand), MAX_WORKERS - jobs.size - realmIdle.length), 0);
}

// Every job counts as activity (a refill waits for a quiet moment); only jobs that take a fresh
// Worker count towards the burst that sizes the pool (realm jobs reuse their Workers).
function noteJobStart() {
  const now = performance.now();
  // A job that starts while others run belongs to their burst, however long the gap (making
  // Workers for concurrent jobs takes this thread more than REFILL_QUIET_MS on a busy machine).
  if (jobs.size <= 1 && now - lastActivity > REFILL_QUIET_MS) burst = 0;
  lastActivity = now;
}

function noteBurst() {
  const now = performance.now();
  burst += 1;
  if (burst >= demand || now - demandAt > DEMAND_MS) {
    demand = Math.max(demand, burst);
    demandAt = now;
  }
}

function scheduleRefill() {
  const wait = lastActivity + REFILL_QUIET_MS - performance.now();
  if (wait > 0) {
    refillTimer ??= setTimeout(() => {
      refillTimer = null;
      scheduleRefill();
    }, wait);
    return;
  }
  trimSpares();
  warmSpares();
}

// Demand fell: terminate the newest ready Workers beyond the pool's size.
function trimSpares() {
  trimRealm();
  const size = poolSize();
  for (let i = spares.length - 1; i >= 0 && spares.length > size; i--) {
    const slot = spares[i];
    if (slot === warming) continue;
    spares.splice(i, 1);
    try { slot.worker.terminate(); } catch { /* already gone */ }
  }
  // (a Worker still warming beyond the size is trimmed when it is ready: warmSpares calls back)
  if (demand > 0 && expiryTimer === null) {
    // look again when this demand expires
    expiryTimer = setTimeout(() => {
      expiryTimer = null;
      scheduleRefill();
    }, Math.max(demandAt + DEMAND_MS - performance.now() + 1, 1));
  }
}

// `now`: a job waits for this Worker (it counts among the running ones, not the pool's).
function warmSpares(now = false) {
  if (warming !== null || (!now && spares.length >= poolSize())) return;
  const slot = spawnWorker(now);
  spares.push(slot);
  warming = slot;
  slot.ready.then(
    () => { slot.isReady = true; },
    () => {},
  ).finally(() => {
    if (warming === slot) warming = null;
    setTimeout(scheduleRefill, 0);
  });
}

async function takeWorker() {
  for (let attempt = 0; attempt < 2; attempt++) {
    for (let d = spares.findIndex((s) => s.dead); d >= 0; d = spares.findIndex((s) => s.dead)) {
      const [gone] = spares.splice(d, 1);
      try { gone.worker.terminate(); } catch { /* already gone */ }
      if (warming === gone) warming = null;
    }
    if (spares.length === 0) {
      warming = null;
      warmSpares(true);
    }
    const i = spares.findIndex((s) => s.isReady === true);
    const slot = spares.splice(i >= 0 ? i : 0, 1)[0];
    if (warming === slot) warming = null;
    try {
      await slot.ready;
      return slot;
    } catch (err) {
      try { slot.worker.terminate(); } catch { /* already gone */ }
      if (attempt === 1) throw err;
    }
  }
  throw new Error("unreachable");
}

// ------------------------------------------------------------------------------- realm Workers

// The fast path (runtime/realm_worker.js): a Worker that stays and runs one job at a time, each
// in a fresh V8 context (realm) of its own, so a job costs ~1 ms of setup instead of a ~52 ms
// fresh Worker. A job goes there when the supervisor allows it (`realm: true`) and its code
// neither is an ES module nor names a global that only a Worker has (the realm lacks Deno,
// process, URL, ...: a realm job that reads one anyway is handed back and runs in a fresh
// Worker, and its code goes to fresh Workers from then on).
// `deno run host.js <socket> <spares> <max> <realms>`: realms "0" starts no realm Worker.
const REALMS = Deno.args[3] !== "0";
const MAX_REALM_WORKERS = 8; // the supervisor runs at most 8 jobs at once (PARALLEL_JOBS)
const REALM_JOBS_MAX = 256; // codes remembered as needing a Worker / checked for names
// Worker-only globals that are also everyday local names: code that declares `name` or `self`
// still fits a realm; reading the global itself is caught there at run time.
const COMMON_NAMES = new Set([
  "close", "location", "name", "self", "global", "getParent", "onerror", "onmessage",
  "onunhandledrejection", "postMessage", "addEventListener", "removeEventListener", "dispatchEvent",
]);
let realmSources = null;
let realmState = "starting"; // "ok" once a realm Worker is ready, "failed" if none can start
let realmFailure = "";
let workerOnlyNames = new Set();
const realmWorkers = new Set();
const realmIdle = [];
const realmWaiters = [];
const needsWorker = new Map(); // code -> true: it read a Worker-only global in a realm
const fitsCache = new Map(); // code -> whether it fits a realm
let realmRunning = 0;
let realmPeak = 0;
let realmPeakAt = -Infinity;
let realmSettled; // resolves once the first realm Worker is ready or none can start
const realmDecided = new Promise((resolve) => { realmSettled = resolve; });
const REALM_START_MS = 20000;

function readRealmSources() {
  const read = (path) => Deno.readTextFileSync(new URL(path, import.meta.url));
  return {
    realm: read("./runtime/realm.js"),
    axios: read("./vendor/axios.js"),
    moment: read("./vendor/moment.js"),
    lodash: read("./vendor/lodash.js"),
  };
}

function spawnRealmWorker() {
  const worker = new Worker(REALM_WORKER_URL, {
    type: "module",
    name: "voicefn-realm",
    deno: { permissions: "none" },
  });
  const slot = { worker, job: null, realm: true, started: false, retire: false };
  realmWorkers.add(slot);
  listen(slot, onRealmWorkerMessage, (detail) => {
    dropRealmWorker(slot);
    try { worker.terminate(); } catch { /* gone */ }
    if (!slot.started) realmStartFailed(detail);
  });
  worker.postMessage({ t: "init", ...realmSources });
  return slot;
}

function dropRealmWorker(slot) {
  realmWorkers.delete(slot);
  const i = realmIdle.indexOf(slot);
  if (i >= 0) realmIdle.splice(i, 1);
  // a waiter that counted on this one starting gets another
  if (realmWaiters.length > startingRealmWorkers() && realmState !== "failed") growRealm();
}

function realmStartFailed(detail) {
  realmFailure ||= detail;
  if (realmState === "starting" && [...realmWorkers].every((s) => !s.started)) {
    realmState = "failed";
    realmSettled();
    // jobs waiting for a realm take fresh Workers instead
    for (const waiter of realmWaiters.splice(0)) waiter(null);
  }
}

function startingRealmWorkers() {
  let n = 0;
  for (const s of realmWorkers) if (!s.started) n += 1;
  return n;
}

function growRealm() {
  if (realmWorkers.size < MAX_REALM_WORKERS) spawnRealmWorker();
}

function markRealmIdle(slot) {
  const waiter = realmWaiters.shift();
  if (waiter) {
    waiter(slot);
    return;
  }
  realmIdle.push(slot);
  trimRealm();
}

// After a burst, keep as many idle realm Workers as the most jobs that ran in realms at once
// (at least one) until DEMAND_MS passed without such a burst.
function trimRealm() {
  if (performance.now() - realmPeakAt > DEMAND_MS) realmPeak = 0;
  const keep = Math.max(1, realmPeak);
  const drop = (slot) => {
    realmIdle.splice(realmIdle.indexOf(slot), 1);
    dropRealmWorker(slot);
    try { slot.worker.terminate(); } catch { /* gone */ }
  };
  // A Worker near its last job goes as soon as it is idle and a successor is ready.
  const successors = [...realmWorkers].filter((s) => s.started && !s.retiring).length;
  for (const slot of realmIdle.filter((s) => s.retiring)) if (successors > 0) drop(slot);
  const staying = () => [...realmWorkers].filter((s) => !s.retiring).length;
  for (let i = 0; i < realmIdle.length && staying() > keep;) {
    if (realmIdle[i].retiring) i += 1;
    else drop(realmIdle[i]);
  }
}

function takeRealmWorker() {
  // the most recently used one that is not about to go (its caches are warm)
  let i = realmIdle.findLastIndex((s) => !s.retiring);
  if (i < 0) i = realmIdle.length - 1;
  if (i >= 0) return Promise.resolve(realmIdle.splice(i, 1)[0]);
  return new Promise((resolve) => {
    realmWaiters.push(resolve);
    if (realmWaiters.length > startingRealmWorkers()) growRealm();
  });
}

function onRealmWorkerMessage(slot, m) {
  if (m === null || typeof m !== "object") return;
  if (m.t === "realm_ready" && !slot.started) {
    slot.started = true;
    if (realmState !== "ok") {
      workerOnlyNames = new Set((Array.isArray(m.worker_only) ? m.worker_only : []).filter((n) => typeof n === "string" && !COMMON_NAMES.has(n)));
      // intrinsics a realm takes away (they would run its code after the job): to a Worker
      for (const n of ["FinalizationRegistry", "WebAssembly"]) workerOnlyNames.add(n);
      realmState = "ok";
      realmSettled();
    }
    markRealmIdle(slot);
  } else if (m.t === "realm_failed" && !slot.started) {
    dropRealmWorker(slot);
    try { slot.worker.terminate(); } catch { /* gone */ }
    realmStartFailed(clip(String(m.detail ?? "the realm Worker failed"), 600));
  } else if (m.t === "retiring" && !slot.retiring) {
    // it goes after a few more jobs: its successor starts now, so no job waits for one then
    slot.retiring = true;
    if (realmWorkers.size < MAX_REALM_WORKERS) spawnRealmWorker();
  } else if (m.t === "ring" && slot.job && !slot.job.finished) {
    slot.job.ring = m.sab instanceof SharedArrayBuffer && m.sab.byteLength > 8 ? m.sab : null;
  } else if (m.t === "fallback" && slot.job) {
    // It read a global only a Worker has, before anything of it left the realm Worker.
    const job = slot.job;
    rememberNeedsWorker(job.msg.code);
    slot.job = null;
    slot.retire = m.retire === true;
    releaseRealmWorker(slot);
    job.slot = null;
    uncountRealm(job);
    job.held = null; // the Worker logs them again
    job.logs = 0;
    runInFreshWorker(job);
  } else {
    if (m.t === "done") slot.retire = m.retire === true;
    if (m.t === "done" && typeof m.worker_only === "string" && slot.job) rememberNeedsWorker(slot.job.msg.code);
    onWorkerMessage(slot, m);
  }
}

// A realm Worker whose job ended by its own message: it takes the next job, unless that was
// its last (then it goes, and a waiting job gets a new one).
function releaseRealmWorker(slot) {
  if (slot.retire) {
    dropRealmWorker(slot);
    try { slot.worker.terminate(); } catch { /* gone */ }
    if (realmWaiters.length > startingRealmWorkers()) growRealm();
  } else {
    markRealmIdle(slot);
  }
}

function rememberNeedsWorker(code) {
  if (needsWorker.size >= REALM_JOBS_MAX) needsWorker.delete(needsWorker.keys().next().value);
  needsWorker.set(code, true);
}

// A realm job that did not end by itself (its deadline, mostly: a job that spins) may have log
// lines its realm Worker never passed on: they are in the realm's log buffer, past the mark the
// realm Worker keeps of what it passed on. Read as untrusted bytes, formatted as those it passes.
function recoverRealmLogs(job) {
  const sab = job.ring;
  if (!sab) return;
  const head = new Int32Array(sab, 0, 2);
  const bytes = new Uint8Array(sab, 8);
  const written = Atomics.load(head, 0);
  let at = Atomics.load(head, 1);
  if (!(at >= 0 && at <= written && written <= bytes.length)) return;
  while (at + 4 <= written) {
    const n = ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
    if (at + 4 + n > written) return;
    let m;
    try {
      m = JSON.parse(decoder.decode(bytes.slice(at + 4, at + 4 + n)));
    } catch {
      return;
    }
    at += 4 + n;
    if (m === null || typeof m !== "object" || m.t !== "log") continue;
    job.logs += 1;
    if (job.logs > job.maxLogs + 1) return;
    const level = LEVELS.has(m.level) ? m.level : "log";
    const message = clip(formatRealmLog(Array.isArray(m.parts) ? m.parts : []), MAX_LOG_MESSAGE);
    const line = { t: "log", id: job.id, level, message };
    if (job.held) job.held.push(line);
    else send(line);
  }
}

// A realm job's log lines wait here until its first request goes out or it ends: one handed
// back to a fresh Worker (it read a Worker-only global first) must not log twice.
function releaseLogs(job) {
  if (!job.held) return;
  for (const line of job.held) send(line);
  job.held = null;
}

function uncountRealm(job) {
  if (job.inRealm) {
    job.inRealm = false;
    realmRunning -= 1;
  }
}

async function runInRealmWorker(job) {
  job.inRealm = true;
  job.held = [];
  realmRunning += 1;
  if (realmRunning >= realmPeak) {
    realmPeak = realmRunning;
    realmPeakAt = performance.now();
  }
  const slot = await takeRealmWorker();
  if (slot === null) { // no realm Worker could start
    uncountRealm(job);
    await runInFreshWorker(job);
    return;
  }
  if (job.finished) { // its deadline passed while it waited
    markRealmIdle(slot);
    return;
  }
  job.slot = slot;
  slot.job = job;
  postJob(slot, job);
}

// Whether a job's code may run in a realm: not an ES module (no `import`/`export`), and no
// identifier outside strings and comments that names a Worker-only global (a property name after
// `.` does not count). Conservative: a false "no" only costs the fast path.
function realmFits(code) {
  if (realmState !== "ok" || typeof code !== "string" || needsWorker.has(code)) return false;
  let fits = fitsCache.get(code);
  if (fits === undefined) {
    fits = !mentionsWorkerGlobal(code);
    if (fitsCache.size >= REALM_JOBS_MAX) fitsCache.delete(fitsCache.keys().next().value);
    fitsCache.set(code, fits);
  }
  return fits;
}

function mentionsWorkerGlobal(code) {
  const IDENT_START = /[A-Za-z_$]/;
  const IDENT_PART = /[A-Za-z0-9_$]/;
  const braces = []; // for each open `{`: whether it opened a template's `${`
  let i = 0;
  let afterDot = false;
  const n = code.length;
  const skipTemplateText = () => { // from inside a template's text to its end or the next `${`
    while (i < n) {
      const c = code[i];
      if (c === "\\") { i += 2; continue; }
      if (c === "`") { i += 1; return; }
      if (c === "$" && code[i + 1] === "{") { i += 2; braces.push(true); return; }
      i += 1;
    }
  };
  while (i < n) {
    const c = code[i];
    if (c === "/" && code[i + 1] === "/") {
      while (i < n && code[i] !== "\n") i += 1;
    } else if (c === "/" && code[i + 1] === "*") {
      const end = code.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === "'" || c === '"') {
      i += 1;
      while (i < n && code[i] !== c && code[i] !== "\n") i += code[i] === "\\" ? 2 : 1;
      i += 1;
      afterDot = false;
    } else if (c === "`") {
      i += 1;
      skipTemplateText();
      afterDot = false;
    } else if (c === "{") {
      braces.push(false);
      i += 1;
      afterDot = false;
    } else if (c === "}") {
      i += 1;
      if (braces.pop() === true) skipTemplateText();
      afterDot = false;
    } else if (IDENT_START.test(c)) {
      let j = i + 1;
      while (j < n && IDENT_PART.test(code[j])) j += 1;
      const word = code.slice(i, j);
      if (!afterDot && (word === "import" || word === "export" || workerOnlyNames.has(word))) return true;
      i = j;
      afterDot = false;
    } else if (c === ".") {
      afterDot = !(code[i + 1] === "." && code[i + 2] === "."); // not a spread
      if (!afterDot) i += 2;
      i += 1;
    } else {
      if (!/\s/.test(c) && c !== "?") afterDot = false; // `a?.b`, `a. b` keep it
      i += 1;
    }
  }
  return false;
}

// ------------------------------------------------------------------------------- jobs

// The jobs running now, by id: the supervisor sends at most a few at once (one tenant's calls
// in parallel), each in a Worker of its own.
const MAX_JOBS = 24; // the supervisor sends at most 8 (PARALLEL_JOBS)
const jobs = new Map();

function clip(text, n) {
  return text.length > n ? text.slice(0, n) + "…" : text;
}

function layerOf(detail) {
  if (/NotCapable|PermissionDenied|Requires \w+ access/.test(detail)) return "deno-permissions";
  if (/--no-remote|--no-npm|remote specifier|npm specifier|jsr specifier/.test(detail)) return "deno-no-remote";
  if (/is blocked in the voicefn sandbox/.test(detail)) return "blocked-module";
  return undefined;
}

// `clean`: the realm Worker itself said the job is over (its realm is dropped, the Worker can
// take the next job); any other end (deadline, stop, crash) terminates whatever Worker ran it.
function finish(job, result, clean = false) {
  if (job.finished) return;
  job.finished = true;
  clearTimeout(job.timer);
  if (job.slot) {
    const slot = job.slot;
    slot.job = null;
    if (slot.realm && clean) {
      // its realm is dropped and it takes the next job at once (or, after its last, goes)
      releaseRealmWorker(slot);
    } else {
      if (slot.realm) dropRealmWorker(slot);
      // cut short (its deadline, a stop) it may still run; any other end (its uncaught error,
      // a message that could not be read) left a Worker that is done or closed already
      if (job.cut) endRunningWorker(slot.worker);
      else try { slot.worker.terminate(); } catch { /* already gone */ }
    }
  }
  if (jobs.get(job.id) === job) jobs.delete(job.id);
  uncountRealm(job);
  if (!clean) recoverRealmLogs(job);
  job.ring = null;
  releaseLogs(job);
  send({ t: "result", id: job.id, runner: job.runner, ...result });
  // Refill the pool once the tenant pauses, so it costs this job and the next nothing.
  lastActivity = performance.now();
  scheduleRefill();
}

// Deno's worker.terminate() does not stop a Worker whose thread is busy in JavaScript (a job that
// spins in a loop, in microtasks too): that thread would run on in this process for good, taking
// the tenant's CPU quota from its next jobs (denoland/deno#35657, seen with 2.9). A Worker whose
// job was cut short (`job.cut`: its deadline, a stop) is asked to answer first: one that answers
// within STUCK_MS is not spinning, and terminate() ends it at its next turn; one that does not is
// terminated all the same and reported, and the supervisor replaces this process as soon as no
// job runs in it. Until then nothing the Worker sends is read (no request, no log line leaves it).
const STUCK_MS = 500;

function endRunningWorker(worker) {
  const end = () => {
    clearTimeout(timer);
    worker.onmessage = null;
    try { worker.terminate(); } catch { /* already gone */ }
  };
  const timer = setTimeout(() => {
    end();
    send({ t: "stuck" });
  }, STUCK_MS);
  worker.onmessage = (event) => {
    if (event.data !== null && typeof event.data === "object" && event.data.t === "pong") end();
  };
  try {
    worker.postMessage({ t: "ping" });
  } catch {
    end(); // it is gone already
  }
}

function isInt(v) {
  return Number.isSafeInteger(v) && v >= 0;
}

async function startJob(msg) {
  if (!isInt(msg.id) || jobs.has(msg.id) || jobs.size >= MAX_JOBS) {
    send({ t: "result", id: msg.id, ok: false, error: "crashed", detail: "the sandbox was busy" });
    return;
  }
  const job = {
    id: msg.id,
    finished: false,
    cut: false, // ended by its deadline or a stop: its Worker may still run (endRunningWorker)
    slot: null,
    logs: 0,
    http: 0,
    maxLogs: isInt(msg.max_log_lines) ? msg.max_log_lines : 200,
    maxHttp: isInt(msg.max_http_requests) ? msg.max_http_requests : 20,
    maxOutput: isInt(msg.max_output_bytes) ? msg.max_output_bytes : 1 << 20,
  };
  jobs.set(job.id, job);
  noteJobStart();
  const timeoutMs = Number.isFinite(msg.timeout_ms) && msg.timeout_ms > 0 ? msg.timeout_ms : 10000;
  // The deadline counts from here, including waiting for the warm worker.
  job.timer = setTimeout(() => {
    job.cut = true;
    finish(job, {
      ok: false,
      error: "timeout",
      detail: `the function did not finish within ${Math.round(timeoutMs) / 1000} s`,
      layer: "wall-clock",
    });
  }, timeoutMs);
  job.msg = msg;
  if (msg.realm === true && realmFits(msg.code)) {
    job.runner = "realm";
    await runInRealmWorker(job);
  } else {
    await runInFreshWorker(job);
  }
}

async function runInFreshWorker(job) {
  job.runner = "worker";
  noteBurst();
  let slot;
  try {
    slot = await takeWorker();
  } catch (err) {
    finish(job, { ok: false, error: "crashed", detail: clip("the worker did not start: " + String(err?.message ?? err), 600) });
    return;
  }
  if (job.finished) {
    try { slot.worker.terminate(); } catch { /* gone */ }
    return;
  }
  job.slot = slot;
  slot.job = job;
  postJob(slot, job);
  // A job that runs for a while (waiting on a request) leaves the tenant quiet: the pool refills
  // then too, not only once a job ends.
  scheduleRefill();
}

function postJob(slot, job) {
  slot.worker.postMessage({
    t: "job",
    code: job.msg.code,
    entrypoint: job.msg.entrypoint,
    data: job.msg.data,
    max_output_bytes: job.maxOutput,
  });
}

function onWorkerMessage(slot, m) {
  if (m === null || typeof m !== "object") return;
  if (m.t === "ready" && slot.job === null) {
    slot.resolveReady();
    return;
  }
  const job = slot.job;
  if (!job || job.finished) return;
  if (m.t === "log") {
    job.logs += 1;
    // One line over the limit tells the supervisor that lines were dropped (it says so itself).
    if (job.logs > job.maxLogs + 1) return;
    const level = LEVELS.has(m.level) ? m.level : "log";
    const message = typeof m.message === "string" ? clip(m.message, MAX_LOG_MESSAGE) : "";
    const line = { t: "log", id: job.id, level, message };
    if (job.held) job.held.push(line);
    else send(line);
  } else if (m.t === "fetch") {
    if (!isInt(m.rid)) return;
    const bad = checkRequest(m);
    if (bad) {
      slot.worker.postMessage({ t: "fetch_result", rid: m.rid, error: bad });
      return;
    }
    job.http += 1;
    // The supervisor decides about the limit (it ends the job); this only bounds the traffic.
    if (job.http > job.maxHttp + 1) return;
    releaseLogs(job);
    send({ t: "fetch", id: job.id, rid: m.rid, method: m.method, url: m.url, headers: m.headers, body: m.body });
  } else if (m.t === "done") {
    if (m.ok === true) {
      if (typeof m.json !== "string") {
        finish(job, { ok: false, error: "invalid_output", detail: "the return value is not JSON" }, slot.realm === true);
      } else if (m.json.length > job.maxOutput || encoder.encode(m.json).length > job.maxOutput) {
        finish(job, { ok: false, error: "invalid_output", detail: `the return value is larger than ${job.maxOutput} bytes`, layer: "output-limit" }, slot.realm === true);
      } else {
        finish(job, { ok: true, json: m.json }, slot.realm === true);
      }
    } else {
      const error = m.error === "invalid_output" ? "invalid_output" : "exception";
      const detail = typeof m.detail === "string" ? clip(m.detail, 600) : "the function failed";
      const layer = m.layer === "output-limit" ? m.layer : layerOf(detail);
      finish(job, { ok: false, error, detail, layer }, slot.realm === true);
    }
  }
}

function checkRequest(m) {
  if (typeof m.method !== "string" || !METHOD.test(m.method)) return "bad method";
  if (typeof m.url !== "string" || m.url.length === 0 || m.url.length > MAX_URL) return "bad or too long URL";
  if (!Array.isArray(m.headers) || m.headers.length > MAX_HEADERS) return "too many headers";
  for (const pair of m.headers) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string"
      || pair[0].length > MAX_HEADER_CHARS || pair[1].length > MAX_HEADER_CHARS) return "bad headers";
  }
  if (typeof m.body !== "string" || m.body.length > MAX_REQUEST_BODY_B64) return "request body too large";
  return null;
}

function onSupervisorMessage(msg) {
  if (msg === null || typeof msg !== "object") return;
  if (msg.t === "run") {
    startJob(msg);
  } else if (msg.t === "fetch_result") {
    const job = jobs.get(msg.id);
    if (job && job.slot && !job.finished) {
      job.slot.worker.postMessage({ t: "fetch_result", rid: msg.rid, status: msg.status, headers: msg.headers, body: msg.body, error: msg.error });
    }
  } else if (msg.t === "stop") {
    const job = jobs.get(msg.id);
    if (job) {
      job.cut = true;
      finish(job, { ok: false, error: typeof msg.error === "string" ? msg.error : "crashed", detail: typeof msg.detail === "string" ? msg.detail : "stopped", layer: typeof msg.layer === "string" ? msg.layer : undefined });
    }
  } else if (msg.t === "ping") {
    send({ t: "pong", n: msg.n });
  }
}

// ------------------------------------------------------------------------------- main

warmSpares();
if (REALMS) {
  try {
    realmSources = readRealmSources();
    spawnRealmWorker();
  } catch (err) {
    realmStartFailed(clip(String(err?.message ?? err), 600));
  }
} else {
  realmState = "off";
  realmSettled();
}
try {
  await spares[0].ready;
} catch (err) {
  await send({ t: "fatal", detail: clip(String(err?.message ?? err), 600) });
  Deno.exit(71);
}
// The first realm Worker decides which names keep a job out of realms: wait for it (or for it
// to fail: then every job takes a fresh Worker).
const realmTimer = setTimeout(() => realmStartFailed("the first realm Worker did not start in time"), REALM_START_MS);
await realmDecided;
clearTimeout(realmTimer);
// The supervisor checks that its import map blocks every Node built-in this Deno has but the
// allowed ones (process.getBuiltinModule bypasses the import map; the host may use it).
let builtins = [];
try {
  builtins = process.getBuiltinModule("node:module").builtinModules;
} catch (err) {
  builtins = ["(unknown: " + String(err?.message ?? err) + ")"];
}
await send({ t: "ready", builtins, realm: realmState === "ok" || realmState === "off" ? realmState : realmFailure || "failed" });
try {
  for await (const msg of frames()) onSupervisorMessage(msg);
} catch {
  Deno.exit(72);
}
Deno.exit(0);
