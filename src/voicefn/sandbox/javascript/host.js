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

const SOCKET = Deno.args[0];
const WORKER_URL = new URL("./worker.js", import.meta.url);
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
  worker.onmessage = (event) => onWorkerMessage(slot, event.data);
  worker.onmessageerror = (event) => {
    event.preventDefault?.();
    if (slot.job) finish(slot.job, { ok: false, error: "invalid_output", detail: "a message from the function could not be read" });
  };
  worker.onerror = (event) => {
    // An uncaught error or unhandled rejection inside the worker. Never let it reach the host.
    event.preventDefault();
    const detail = clip(String(event.message ?? "uncaught error"), 600);
    if (!slot.job) {
      slot.dead = true;
      slot.rejectReady(new Error(detail));
      return;
    }
    finish(slot.job, { ok: false, error: "exception", detail, layer: layerOf(detail) });
  };
  return slot;
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
  return Math.max(Math.min(Math.max(SPARES, demand), MAX_WORKERS - jobs.size), 0);
}

function noteJobStart() {
  const now = performance.now();
  // A job that starts while others run belongs to their burst, however long the gap (making
  // Workers for concurrent jobs takes this thread more than REFILL_QUIET_MS on a busy machine).
  if (jobs.size <= 1 && now - lastActivity > REFILL_QUIET_MS) burst = 0;
  burst += 1;
  if (burst >= demand || now - demandAt > DEMAND_MS) {
    demand = Math.max(demand, burst);
    demandAt = now;
  }
  lastActivity = now;
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

function finish(job, result) {
  if (job.finished) return;
  job.finished = true;
  clearTimeout(job.timer);
  if (job.slot) {
    job.slot.job = null;
    try { job.slot.worker.terminate(); } catch { /* already gone */ }
  }
  if (jobs.get(job.id) === job) jobs.delete(job.id);
  send({ t: "result", id: job.id, ...result });
  // Refill the pool once the tenant pauses, so it costs this job and the next nothing.
  lastActivity = performance.now();
  scheduleRefill();
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
    finish(job, {
      ok: false,
      error: "timeout",
      detail: `the function did not finish within ${Math.round(timeoutMs) / 1000} s`,
      layer: "wall-clock",
    });
  }, timeoutMs);
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
  slot.worker.postMessage({
    t: "job",
    code: msg.code,
    entrypoint: msg.entrypoint,
    data: msg.data,
    max_output_bytes: job.maxOutput,
  });
  // A job that runs for a while (waiting on a request) leaves the tenant quiet: the pool refills
  // then too, not only once a job ends.
  scheduleRefill();
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
    send({ t: "log", id: job.id, level, message });
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
    send({ t: "fetch", id: job.id, rid: m.rid, method: m.method, url: m.url, headers: m.headers, body: m.body });
  } else if (m.t === "done") {
    if (m.ok === true) {
      if (typeof m.json !== "string") {
        finish(job, { ok: false, error: "invalid_output", detail: "the return value is not JSON" });
      } else if (m.json.length > job.maxOutput || encoder.encode(m.json).length > job.maxOutput) {
        finish(job, { ok: false, error: "invalid_output", detail: `the return value is larger than ${job.maxOutput} bytes`, layer: "output-limit" });
      } else {
        finish(job, { ok: true, json: m.json });
      }
    } else {
      const error = m.error === "invalid_output" ? "invalid_output" : "exception";
      const detail = typeof m.detail === "string" ? clip(m.detail, 600) : "the function failed";
      const layer = m.layer === "output-limit" ? m.layer : layerOf(detail);
      finish(job, { ok: false, error, detail, layer });
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
      finish(job, { ok: false, error: typeof msg.error === "string" ? msg.error : "crashed", detail: typeof msg.detail === "string" ? msg.detail : "stopped", layer: typeof msg.layer === "string" ? msg.layer : undefined });
    }
  } else if (msg.t === "ping") {
    send({ t: "pong", n: msg.n });
  }
}

// ------------------------------------------------------------------------------- main

warmSpares();
try {
  await spares[0].ready;
} catch (err) {
  await send({ t: "fatal", detail: clip(String(err?.message ?? err), 600) });
  Deno.exit(71);
}
// The supervisor checks that its import map blocks every Node built-in this Deno has but the
// allowed ones (process.getBuiltinModule bypasses the import map; the host may use it).
let builtins = [];
try {
  builtins = process.getBuiltinModule("node:module").builtinModules;
} catch (err) {
  builtins = ["(unknown: " + String(err?.message ?? err) + ")"];
}
await send({ t: "ready", builtins });
try {
  for await (const msg of frames()) onSupervisorMessage(msg);
} catch {
  Deno.exit(72);
}
Deno.exit(0);
