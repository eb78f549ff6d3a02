// voicefn JavaScript sandbox: what every Worker that runs customer code takes away before the
// first job (worker.js: one job per Worker; realm_worker.js: jobs in fresh realms inside it).
"use strict";

const ErrorCtor = Error;

/** Break thread creation, remove Deno's raw ops and the Node layer's ways around the import map,
 * and make the ways to end the Worker throw. Call once, before any customer code runs. */
export function scrubWorker() {
  // No threads: a job is exactly one isolate, terminated at its end. The import map blocks
  // `import("node:worker_threads")`, but not an import from inside a data: or blob: module (Deno
  // applies no import map there), so the thread-starting classes themselves are broken: their
  // constructors call super(), which now throws, and they are frozen so nobody can mend them.
  function threadsBlocked() {
    throw new ErrorCtor("new Worker() is blocked in the voicefn sandbox (a function is one isolate, no threads)");
  }
  function breakConstructor(ctor) {
    if (typeof ctor !== "function") return;
    Object.setPrototypeOf(ctor, threadsBlocked);
    Object.freeze(ctor);
  }
  breakConstructor(globalThis.Worker);
  try {
    breakConstructor(process.getBuiltinModule("node:worker_threads").Worker);
  } catch (err) {
    // Without the node layer there is nothing to break; anything else must not go unnoticed.
    if (typeof process !== "undefined") throw err;
  }
  delete globalThis.Worker;
  // Nothing that reaches around the import map (which blocks node:worker_threads,
  // node:child_process, node:module, node:v8, node:vm, ...) or into Deno's internals (the raw ops,
  // op_create_worker among them), and no writing to the process's stdio.
  delete Deno[Deno.internal];
  for (const name of ["stdin", "stdout", "stderr"]) {
    try { delete Deno[name]; } catch { /* not configurable */ }
  }
  try {
    for (const name of [
      "getBuiltinModule", "binding", "_linkedBinding", "dlopen", "mainModule", "_eval",
      "moduleLoadList", "kill", "_kill", "chdir", "send", "disconnect", "channel", "openStdin",
      "stdin", "stdout", "stderr", "_rawDebug", "report", "loadEnvFile", "setSourceMapsEnabled",
      "setUncaughtExceptionCaptureCallback", "execve",
    ]) {
      delete process[name];
    }
  } catch { /* no node compatibility layer */ }
  // A job that ends its own worker would otherwise only be noticed at the deadline.
  function noExit(name) {
    return () => {
      throw new ErrorCtor(`${name} is not available in a function; return a value instead`);
    };
  }
  globalThis.close = noExit("close()");
  Deno.exit = noExit("Deno.exit()");
  try {
    process.exit = noExit("process.exit()");
    process.reallyExit = noExit("process.reallyExit()");
    process.abort = noExit("process.abort()");
  } catch { /* no node compatibility layer */ }
}
