// voicefn JavaScript sandbox: the prelude of one job's Worker (`deno.permissions: "none"`).
//
// Loads the vendored libraries (as globals `axios`, `moment`, `_`; also importable as "axios",
// "moment", "lodash" through the import map), replaces `fetch` with one that asks the host (and
// so the Python supervisor's egress callback) to make the request, captures console output,
// then waits for exactly one job. The Worker is terminated after the job, so nothing the
// customer's code does here outlives it.
//
// axios is evaluated here (most functions use it). moment and lodash are only loaded and linked
// (`import defer`): they are evaluated in this Worker the first time its job touches `moment` or
// `_` (or imports them), so a Worker costs about half as much CPU and a job that never uses them
// does not pay for them. Either way the library is this Worker's own instance.
import axios from "./vendor/axios.js";
import defer * as momentModule from "./vendor/moment.js";
import defer * as lodashModule from "./vendor/lodash.js"; // UMD build: sets globalThis._
// `import _ from "lodash"` resolves here (the import map); it reads the global `_` below.
// Deferred, never touched by the prelude: it is only loaded so that the job may import it
// (a Worker without permissions cannot read a module that is not loaded yet).
import defer * as _lodashEntry from "./vendor/lodash.mjs";
import { scrubWorker } from "./runtime/scrub.js";

// -- primordials, captured before any customer code runs
const post = globalThis.postMessage.bind(globalThis);
const addListener = globalThis.addEventListener.bind(globalThis);
const jsonStringify = JSON.stringify;
const jsonParse = JSON.parse;
const fromBase64 = Uint8Array.fromBase64.bind(Uint8Array);
const toBase64 = Function.prototype.call.bind(Uint8Array.prototype.toBase64);
const inspect = Deno.inspect;
const RequestCtor = Request;
const ResponseCtor = Response;
const ErrorCtor = Error;
const TypeErrorCtor = TypeError;
const StringCtor = String;
const PromiseCtor = Promise;
const MapCtor = Map;
const AsyncFunction = (async function () {}).constructor;
const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const MAX_REQUEST_BODY = 4 << 20;

function clip(text, n) {
  return text.length > n ? text.slice(0, n) + "…" : text;
}

function describe(err) {
  try {
    if (err instanceof ErrorCtor) {
      const name = StringCtor(err.name ?? "Error");
      const message = StringCtor(err.message ?? "");
      return clip(message ? `${name}: ${message}` : name, 600);
    }
    if (typeof err === "string") return clip(err, 600);
    if (err === undefined) return "undefined was thrown";
    try {
      const text = jsonStringify(err);
      if (typeof text === "string") return clip(text, 600);
    } catch { /* fall through */ }
    return clip(StringCtor(err), 600);
  } catch {
    return "an unprintable value was thrown";
  }
}

// -- console
function format(args) {
  let out = "";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    let piece;
    try {
      piece = typeof a === "string" ? a : inspect(a, { depth: 4, colors: false, iterableLimit: 50, strAbbreviateSize: 2000 });
    } catch {
      piece = "[unprintable]";
    }
    out += (i ? " " : "") + piece;
    if (out.length > 4000) break;
  }
  return clip(out, 4000);
}

function logger(level) {
  return (...args) => post({ t: "log", level, message: format(args) });
}

const sandboxConsole = {
  log: logger("log"),
  info: logger("info"),
  debug: logger("debug"),
  trace: logger("debug"),
  warn: logger("warn"),
  error: logger("error"),
  dir: logger("log"),
  table: logger("log"),
  assert: (cond, ...args) => {
    if (!cond) post({ t: "log", level: "error", message: format(["Assertion failed", ...args]) });
  },
};
for (const name of ["group", "groupCollapsed", "groupEnd", "time", "timeEnd", "timeLog", "count", "countReset", "clear"]) {
  sandboxConsole[name] = () => {};
}
globalThis.console = sandboxConsole;

// -- fetch through the host
const pending = new MapCtor();
let nextRid = 1;
// While the Worker rehearses (below, before it says it is ready), its own requests are answered
// here and never reach the host. Module scope: the job's code cannot see or set it.
let rehearsing = false;
const REHEARSAL_REPLY = { status: 200, headers: [["content-type", "application/json"]], body: "eyJvayI6dHJ1ZX0=" };

function postFetch(msg) {
  if (!rehearsing) {
    post(msg);
    return;
  }
  queueMicrotask(() => {
    const waiter = pending.get(msg.rid);
    if (waiter) {
      pending.delete(msg.rid);
      waiter.resolve({ t: "fetch_result", rid: msg.rid, ...REHEARSAL_REPLY });
    }
  });
}

async function sandboxFetch(input, init) {
  const request = new RequestCtor(input, init);
  const signal = request.signal;
  if (signal?.aborted) throw signal.reason;
  let body = new Uint8Array(0);
  if (request.body !== null) {
    body = new Uint8Array(await request.arrayBuffer());
    if (body.length > MAX_REQUEST_BODY) throw new TypeErrorCtor(`fetch failed: the request body is larger than ${MAX_REQUEST_BODY} bytes`);
  }
  const rid = nextRid++;
  const reply = await new PromiseCtor((resolve, reject) => {
    pending.set(rid, { resolve, reject });
    if (signal) {
      signal.addEventListener("abort", () => {
        pending.delete(rid);
        reject(signal.reason);
      }, { once: true });
    }
    postFetch({
      t: "fetch",
      rid,
      method: request.method,
      url: request.url,
      headers: [...request.headers],
      body: toBase64(body),
    });
  });
  if (typeof reply.error === "string") throw new TypeErrorCtor(`fetch failed: ${reply.error}`);
  const status = reply.status;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new TypeErrorCtor(`fetch failed: unsupported response status ${status}`);
  }
  let bytes;
  try {
    bytes = fromBase64(typeof reply.body === "string" ? reply.body : "");
  } catch {
    throw new TypeErrorCtor("fetch failed: the response body was malformed");
  }
  const response = new ResponseCtor(NULL_BODY.has(status) ? null : bytes, {
    status,
    headers: Array.isArray(reply.headers) ? reply.headers : [],
  });
  Object.defineProperty(response, "url", { value: request.url });
  return response;
}

globalThis.fetch = sandboxFetch;

// -- what the function may use
globalThis.axios = axios;

// A global that evaluates its library on first read. Reading or assigning it leaves a plain
// data property (as `globalThis.x = ...` would). lodash reads `root._` while it evaluates (to
// keep an older `_` for noConflict): that nested read sees undefined instead of evaluating again.
function lazyGlobal(name, load) {
  let loading = false;
  const settle = (value) => {
    Object.defineProperty(globalThis, name, { value, writable: true, enumerable: true, configurable: true });
  };
  Object.defineProperty(globalThis, name, {
    configurable: true,
    enumerable: true,
    get() {
      if (loading) return undefined;
      loading = true;
      try {
        const value = load();
        settle(value);
        return value;
      } finally {
        loading = false;
      }
    },
    set(value) {
      settle(value);
    },
  });
}
lazyGlobal("moment", () => momentModule.default);
lazyGlobal("_", () => {
  void lodashModule.VERSION; // evaluates lodash, which assigns globalThis._ (the setter above)
  return globalThis._;
});
scrubWorker();

async function runJob(msg) {
  const entry = msg.entrypoint;
  if (typeof entry !== "string" || !IDENT.test(entry)) {
    return { ok: false, error: "exception", detail: "the entrypoint is not a JavaScript identifier" };
  }
  let fn;
  try {
    const factory = new AsyncFunction(
      "module",
      "exports",
      `${msg.code}\n;return (typeof ${entry} === "function") ? ${entry} : undefined;`,
    );
    const module = { exports: {} };
    fn = await factory(module, module.exports);
    if (typeof fn !== "function") fn = module.exports?.[entry];
  } catch (err) {
    if (!(err instanceof SyntaxError) || !/\b(import|export)\b/.test(msg.code)) {
      return { ok: false, error: "exception", detail: describe(err) };
    }
    // An ES module (`export async function name(data)`): evaluate it as one.
    try {
      const url = URL.createObjectURL(new Blob([msg.code], { type: "text/javascript" }));
      const ns = await import(url);
      fn = ns[entry] ?? ns.default;
    } catch (moduleErr) {
      return { ok: false, error: "exception", detail: describe(moduleErr) };
    }
  }
  if (typeof fn !== "function") {
    return { ok: false, error: "exception", detail: `no function named ${entry} is defined` };
  }
  let value;
  try {
    value = await fn(jsonParse(msg.data));
  } catch (err) {
    return { ok: false, error: "exception", detail: describe(err) };
  }
  let json;
  try {
    json = value === undefined ? "null" : jsonStringify(value);
  } catch (err) {
    return { ok: false, error: "invalid_output", detail: "the return value is not JSON-serializable: " + describe(err) };
  }
  if (typeof json !== "string") {
    return { ok: false, error: "invalid_output", detail: `the return value (${typeof value}) is not JSON-serializable` };
  }
  if (json.length > msg.max_output_bytes) {
    return {
      ok: false,
      error: "invalid_output",
      detail: `the return value is larger than ${msg.max_output_bytes} bytes`,
      layer: "output-limit",
    };
  }
  return { ok: true, json };
}

let started = false;
addListener("message", (event) => {
  const msg = event.data;
  if (msg === null || typeof msg !== "object") return;
  if (msg.t === "fetch_result") {
    const waiter = pending.get(msg.rid);
    if (waiter) {
      pending.delete(msg.rid);
      waiter.resolve(msg);
    }
  } else if (msg.t === "ping") {
    post({ t: "pong" }); // the host asks whether this thread still turns (a job past its end)
  } else if (msg.t === "job" && !started) {
    started = true;
    runJob(msg).then(
      (result) => post({ t: "done", ...result }),
      (err) => post({ t: "done", ok: false, error: "exception", detail: describe(err) }),
    );
  }
});

// Rehearsal: one axios request through the fetch above, answered inside this Worker, so that V8
// has compiled axios's request path (and ours) before a job needs it. Only this trusted code
// runs here; no job has touched the Worker yet, and everything it used is put back.
async function rehearse() {
  rehearsing = true;
  try {
    await axios.get("https://rehearsal.invalid/", { params: { q: 1 } });
  } catch {
    /* a rehearsal never keeps a Worker from being used */
  } finally {
    rehearsing = false;
    pending.clear();
    nextRid = 1;
  }
}
// A Worker made for a job that is already waiting (the pool was empty) goes straight to it.
if (globalThis.name !== "voicefn-job-now") await rehearse();

post({ t: "ready" });
