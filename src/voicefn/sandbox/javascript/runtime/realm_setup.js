// voicefn JavaScript sandbox: what the outer side of a realm needs to set one up, shared by the
// realm Worker (realm_worker.js) and the tests' harness that plays it (realm_harness.js).
"use strict";

// What this realm sets up in every job's realm itself (so no trap for these names).
export const REALM_GLOBALS = new Set([
  "console", "setTimeout", "clearTimeout", "setInterval", "clearInterval", "fetch", "Request",
  "Response", "Headers", "AbortController", "AbortSignal", "axios", "moment", "_", "btoa", "atob",
]);


// Every global name a Worker's code can read (its global object and prototypes) that a bare
// realm does not have: realm.js traps each, so such a job runs in a Worker instead.
export function workerOnlyNames(bare) {
  const has = new Set();
  for (let o = bare; o !== null; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) has.add(k);
  }
  const out = new Set();
  for (let o = globalThis; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (!has.has(k) && !REALM_GLOBALS.has(k)) out.add(k);
    }
  }
  // the Node layer's globals a Worker resolves lazily
  for (const k of ["process", "Buffer", "global", "setImmediate", "clearImmediate"]) {
    if (!has.has(k)) out.add(k);
  }
  return [...out].sort();
}

// A library's ES module build as a script whose value is its default export; a UMD build gets
// the CommonJS `module` it looks for. Refuses what it does not recognise (no silent half-library).
export function asExpression(name, src) {
  const exports = [...src.matchAll(/\bexport\s*\{([^}]*)\}\s*;?/g)];
  if (exports.length === 0) {
    return `(function(){var module={exports:{}},exports=module.exports;${src}\n;return module.exports;})()`;
  }
  if (exports.length !== 1) throw new Error(`${name}: more than one export statement`);
  const pairs = exports[0][1].split(",").map((p) => p.trim().split(/\s+as\s+/));
  const found = pairs.find((p) => p.length === 2 && p[1] === "default");
  if (!found || !/^[A-Za-z_$][\w$]*$/.test(found[0])) throw new Error(`${name}: no default export`);
  const body = src.slice(0, exports[0].index) + `return ${found[0]};` + src.slice(exports[0].index + exports[0][0].length);
  if (/^\s*(import|export)\b/m.test(body)) throw new Error(`${name}: module syntax left after wrapping`);
  return `(function(){"use strict";\n${body}\n})()`;
}
