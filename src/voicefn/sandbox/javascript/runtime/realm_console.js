// voicefn JavaScript sandbox: log lines and uncaught errors of a realm job, formatted as a
// one-job Worker formats them. The realm (realm.js) describes each value as a tree of
// primitives (no object crosses between the realms); this rebuilds it as plain objects of this
// realm and hands them to Deno.inspect, with worker.js's options.
"use strict";

const inspect = Deno.inspect;
const INSPECT_OPTIONS = { depth: 4, colors: false, iterableLimit: 50, strAbbreviateSize: 2000 };

function clip(text, n) {
  return text.length > n ? text.slice(0, n) + "…" : text;
}

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

// An error nobody caught, as Deno words it: "Name: message" for an Error, else Deno.inspect.
export function uncaughtText(shape) {
  if (shape !== null && typeof shape === "object") {
    if (typeof shape.err === "string") return shape.err;
    if ("v" in shape) {
      try {
        return inspect(rebuild(shape.v, new Map()), INSPECT_OPTIONS);
      } catch { /* below */ }
    }
  }
  return "an unprintable value was thrown";
}

export function format(parts) {
  let out = "";
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    let piece;
    if (p !== null && typeof p === "object" && typeof p.s === "string") {
      piece = p.s;
    } else {
      try {
        piece = inspect(rebuild(p?.v, new Map()), INSPECT_OPTIONS);
      } catch {
        piece = "[unprintable]";
      }
    }
    out += (i ? " " : "") + piece;
    if (out.length > 4000) break;
  }
  return clip(out, 4000);
}
