// voicefn JavaScript sandbox: log lines and uncaught errors of a realm job, formatted as a
// one-job Worker formats them. The realm (realm.js) describes each value as a tree of
// primitives (no object crosses between the realms); this rebuilds it as objects of this realm
// of the same kinds (a boxed Number, a Uint8Array, an ArrayBuffer, a TypeError, an Array
// Iterator, a class that extends another, ...), with the same constructor names, tags and own
// enumerable properties, and hands them to Deno.inspect, with worker.js's options. What a custom
// inspector of the job returned (the realm called it) comes back as an object whose
// Deno.customInspect returns that text; one that threw, as one that throws.
"use strict";

const inspect = Deno.inspect;
const INSPECT_OPTIONS = { depth: 4, colors: false, iterableLimit: 50, strAbbreviateSize: 2000 };
const CUSTOM_INSPECT = Symbol.for("Deno.customInspect");
//: bytes of typed arrays and buffers rebuilt for one log line (their lengths are printed)
const MAX_REBUILT_BYTES = 64 << 20;

const ERRORS = {
  __proto__: null, Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError,
};
const TYPED = {
  __proto__: null, Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
};
if (typeof globalThis.Float16Array === "function") TYPED.Float16Array = globalThis.Float16Array;
// fresh iterators of each kind: Deno prints their tags (their items are masked in the tests:
// the realm cannot read them without consuming them)
const ITERATORS = {
  __proto__: null,
  "Array Iterator": () => [].values(),
  "Map Iterator": () => new Map().keys(), // (entries() prints "Map Entries": the realm cannot tell them apart)
  "Set Iterator": () => new Set().values(),
  "String Iterator": () => ""[Symbol.iterator](),
  "RegExp String Iterator": () => "".matchAll(/a/g),
  "Iterator Helper": () => [].values().map((x) => x),
  "Generator": () => (function* () {})(),
  "AsyncGenerator": () => (async function* () {})(),
};

function clip(text, n) {
  return text.length > n ? text.slice(0, n) + "…" : text;
}

// classes by name (and base): a rebuilt instance's constructor name is what Deno prints
const classes = new Map();
function namedClass(name, Base = null) {
  const key = `${Base === null ? "" : Base.name}\u0000${name}`;
  let C = classes.get(key);
  if (C === undefined) {
    C = Base === null ? { [name]: class {} }[name] : { [name]: class extends Base {} }[name];
    if (classes.size < 256) classes.set(key, C);
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

function symbol(node) {
  if (typeof node.wk === "string" && typeof Symbol[node.wk] === "symbol") return Symbol[node.wk];
  const text = typeof node.v === "string" ? node.v : undefined;
  return node.reg === true && text !== undefined ? Symbol.for(text) : Symbol(text);
}

const hidden = (o, key, value) => Object.defineProperty(o, key, { value, writable: true, enumerable: false, configurable: true });

// own enumerable properties: [key, value node] with a string key or a symbol node
function setProps(o, list, ctx, depth) {
  for (const entry of Array.isArray(list) ? list : []) {
    if (!Array.isArray(entry)) continue;
    const [k, value] = entry;
    const key = typeof k === "string" ? k : k?.t === "sym" ? symbol(k) : null;
    if (key === null) continue;
    try {
      if (value?.t === "acc") {
        const accessor = {};
        if (value.get) accessor.get = () => undefined;
        if (value.set) accessor.set = () => {};
        Object.defineProperty(o, key, { ...accessor, enumerable: true, configurable: true });
      } else {
        Object.defineProperty(o, key, { value: rebuild(value, ctx, depth + 1), enumerable: true, writable: true, configurable: true });
      }
    } catch { /* a key the rebuilt kind refuses */ }
  }
}

// the properties and the Symbol.toStringTag of a node (a tag that is not the rebuilt object's
// own enumerable property, nor what its kind gives it, is set as a hidden own property)
function finish(o, node, ctx, depth) {
  setProps(o, node.t === "obj" ? node.entries : node.props, ctx, depth);
  if (typeof node.tag === "string") {
    let current;
    try { current = o[Symbol.toStringTag]; } catch { /* below */ }
    if (current !== node.tag) hidden(o, Symbol.toStringTag, node.tag);
  }
  return o;
}

function bytesFor(ctx, n) {
  const size = Math.max(0, Math.min(Number(n) || 0, MAX_REBUILT_BYTES - ctx.bytes));
  ctx.bytes += size;
  return size;
}

function rebuildError(node, ctx, depth) {
  const Base = ERRORS[node.base] ?? Error;
  const C = typeof node.cls === "string" && node.cls && node.cls !== Base.name ? namedClass(node.cls, Base) : Base;
  const message = String(node.message ?? "");
  const e = Base === AggregateError ? new C([], message) : message ? new C(message) : new C();
  ctx.refs.set(node.id, e);
  if (Base === AggregateError) delete e.errors;
  if (e.name !== node.name) hidden(e, "name", String(node.name ?? "Error"));
  hidden(e, "stack", typeof node.stack === "string" ? node.stack : undefined);
  if ("cause" in node) hidden(e, "cause", rebuild(node.cause, ctx, depth + 1));
  if ("errors" in node) hidden(e, "errors", rebuild(node.errors, ctx, depth + 1));
  return finish(e, node, ctx, depth);
}

function rebuildArray(node, ctx, depth) {
  const items = Array.isArray(node.items) ? node.items : [];
  const more = Number.isSafeInteger(node.more) && node.more > 0 ? Math.min(node.more, 1e9) : 0;
  const a = typeof node.cls === "string" && node.cls ? new (namedClass(node.cls, Array))() : [];
  ctx.refs.set(node.id, a);
  items.forEach((item, i) => {
    if (item?.t !== "hole") a[i] = rebuild(item, ctx, depth + 1);
  });
  a.length = items.length + more;
  for (const entry of Array.isArray(node.tail) ? node.tail : []) {
    const at = entry?.[0];
    if (Number.isSafeInteger(at) && at >= items.length && at < a.length) a[at] = rebuild(entry[1], ctx, depth + 1);
  }
  return finish(a, node, ctx, depth);
}

function rebuildBuffer(node, ctx) {
  if (node.detached === true) {
    const b = new ArrayBuffer(0);
    b.transfer();
    return b;
  }
  const size = bytesFor(ctx, node.len);
  const b = node.shared === true ? new SharedArrayBuffer(size) : new ArrayBuffer(size);
  const view = new Uint8Array(b);
  const hex = typeof node.hex === "string" ? node.hex : "";
  for (let i = 0; i * 2 < hex.length && i < size; i++) view[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16) || 0;
  return b;
}

function rebuildTyped(node, ctx) {
  const C = TYPED[node.kind] ?? Uint8Array;
  const len = Math.floor(bytesFor(ctx, (Number(node.len) || 0) * C.BYTES_PER_ELEMENT) / C.BYTES_PER_ELEMENT);
  const t = new C(len);
  const big = C === BigInt64Array || C === BigUint64Array;
  const items = Array.isArray(node.items) ? node.items : [];
  for (let i = 0; i < items.length && i < len; i++) {
    try { t[i] = big ? BigInt(items[i]) : Number(items[i]); } catch { /* left 0 */ }
  }
  return t;
}

// what a custom inspector returned, printed verbatim; or one that throws what it threw
function customText(text) {
  return { [CUSTOM_INSPECT]: () => String(text) };
}
function throwing(node, ctx, depth) {
  const thrown = rebuild(node.err, ctx, depth + 1);
  return { [CUSTOM_INSPECT]: () => { throw thrown; } };
}

function rebuild(node, ctx, depth = 0) {
  if (node === null || typeof node !== "object" || depth > 64) return undefined;
  switch (node.t) {
    case "str": return String(node.v);
    case "num": return node.v === "-0" ? -0 : Number(node.v);
    case "big": try { return BigInt(node.v); } catch { return undefined; }
    case "bool": return node.v === true;
    case "null": return null;
    case "undef": case "hole": return undefined;
    case "sym": return symbol(node);
    case "custom": return customText(node.v);
    case "throws": return throwing(node, ctx, depth);
    case "date": {
      const d = new Date(typeof node.v === "number" ? node.v : NaN);
      ctx.refs.set(node.id, d);
      return finish(d, node, ctx, depth);
    }
    case "re": {
      let re;
      try { re = new RegExp(String(node.src), String(node.flags)); } catch { return undefined; }
      ctx.refs.set(node.id, re);
      return finish(re, node, ctx, depth);
    }
    case "cyc": return ctx.refs.get(node.id);
    case "cut": return node.kind === "arr" ? [] : (node.cls ? Object.create(namedClass(String(node.cls)).prototype) : {});
    case "fn": {
      const f = namedFunction(node.name, node.kind);
      ctx.refs.set(node.id, f);
      if (typeof node.ext === "string" && node.ext) Object.setPrototypeOf(f, namedFunction(node.ext, "class"));
      if (node.nullproto === true) Object.setPrototypeOf(f, null);
      return finish(f, node, ctx, depth);
    }
    case "err": return rebuildError(node, ctx, depth);
    case "arr": return rebuildArray(node, ctx, depth);
    case "map": case "set": {
      const c = node.t === "map" ? new Map() : new Set();
      ctx.refs.set(node.id, c);
      const list = Array.isArray(node.entries ?? node.items) ? (node.entries ?? node.items) : [];
      for (const e of list) {
        if (node.t === "map") c.set(rebuild(e?.[0], ctx, depth + 1), rebuild(e?.[1], ctx, depth + 1));
        else c.add(rebuild(e, ctx, depth + 1));
      }
      return finish(c, node, ctx, depth);
    }
    case "box": {
      const b = Object(rebuild(node.v, ctx, depth + 1));
      ctx.refs.set(node.id, b);
      return finish(b, node, ctx, depth);
    }
    case "weak": {
      const w = node.kind === "WeakSet" ? new WeakSet() : new WeakMap();
      ctx.refs.set(node.id, w);
      return finish(w, node, ctx, depth);
    }
    case "ta": {
      const t = rebuildTyped(node, ctx);
      ctx.refs.set(node.id, t);
      return finish(t, node, ctx, depth);
    }
    case "ab": {
      const b = rebuildBuffer(node, ctx);
      ctx.refs.set(node.id, b);
      return finish(b, node, ctx, depth);
    }
    case "dv": {
      const buf = rebuild(node.buf, ctx, depth + 1);
      let dv = {};
      try {
        const off = Math.min(Number(node.off) || 0, buf.byteLength);
        dv = new DataView(buf, off, Math.min(Number(node.len) || 0, buf.byteLength - off));
      } catch { /* a buffer that was not rebuilt */ }
      ctx.refs.set(node.id, dv);
      return finish(dv, node, ctx, depth);
    }
    case "iter": {
      const it = (ITERATORS[node.kind] ?? (() => ({})))();
      ctx.refs.set(node.id, it);
      return finish(it, node, ctx, depth);
    }
    case "obj": {
      const o = node.nullproto === true ? Object.create(null)
        : typeof node.cls === "string" && node.cls ? Object.create(namedClass(node.cls).prototype) : {};
      ctx.refs.set(node.id, o);
      return finish(o, node, ctx, depth);
    }
    default: return undefined;
  }
}

// one value's objects by id; the byte budget is the line's
const fresh = (budget = { bytes: 0 }) => ({ refs: new Map(), get bytes() { return budget.bytes; }, set bytes(n) { budget.bytes = n; } });

// An error nobody caught, as Deno words it: "Name: message" for an Error, else Deno.inspect.
// When the value's own custom inspector throws, a Worker words a thrown one (a timer's or a
// microtask's: the realm's {"t": "uncaught"} message) by what the inspector threw, as if that
// had been thrown; a rejection (the bare shape) as V8 names the reason: `#<Object>`.
export function uncaughtText(shape) {
  if (shape !== null && typeof shape === "object" && typeof shape.err === "string") return shape.err;
  if (shape === null || typeof shape !== "object" || !("v" in shape)) return "an unprintable value was thrown";
  try {
    return inspect(rebuild(shape.v, fresh()), INSPECT_OPTIONS);
  } catch (thrown) {
    if (shape.v?.t !== "throws") return "an unprintable value was thrown";
    if (shape.t !== "uncaught") return `#<${typeof shape.v.cls === "string" ? shape.v.cls : "Object"}>`;
    try {
      if (thrown instanceof Error) return thrown.message ? `${thrown.name}: ${thrown.message}` : String(thrown.name);
      return inspect(thrown, INSPECT_OPTIONS);
    } catch {
      return "an unprintable value was thrown";
    }
  }
}

export function format(parts) {
  const budget = { bytes: 0 };
  let out = "";
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    let piece;
    if (p !== null && typeof p === "object" && typeof p.s === "string") {
      piece = p.s;
    } else {
      try {
        piece = inspect(rebuild(p?.v, fresh(budget)), INSPECT_OPTIONS);
      } catch {
        piece = "[unprintable]";
      }
    }
    out += (i ? " " : "") + piece;
    if (out.length > 4000) break;
  }
  return clip(out, 4000);
}
