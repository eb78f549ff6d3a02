// voicefn JavaScript sandbox: the runtime inside one job's realm (the fast path).
//
// The outer code (runtime/realm_worker.js) makes a fresh V8 context per job
// (`vm.createContext(DONT_CONTEXTIFY)`), evaluates this script in it first, and calls the
// function it evaluates to: `setup(workerOnlyJson, axiosSrc, momentSrc, lodashSrc)` (strings).
// setup installs what a job may use (console, timers, fetch and its web classes, lazy axios /
// moment / _) and returns `control(op, arg)`, the only door between the realms.
//
// The rule: nothing of the outer realm is ever reachable from here (an outer object gives
// `x.constructor.constructor`, the outer Function). So control takes and returns primitives only
// (and, once, the SharedArrayBuffer this realm made), never throws, and every object a job can
// reach was made here. Messages to the outer are queued as plain JSON and a doorbell rings
// (Atomics.notify on that buffer); the outer answers through control("deliver", json).
//
// Everything setup's functions use is captured before the job runs, so a job that edits
// prototypes or globals changes only what it sees itself, never what this code does. Nothing is
// declared at the top level of this script: a global lexical binding would be visible to the job.
// deno-lint-ignore-file require-await -- async methods turn a throw into a rejection, as Deno's do
"use strict";
(function setup(workerOnlyJson, axiosSrc, momentSrc, lodashSrc) {
  "use strict";
  // V8 hands Error.prepareStackTrace CallSite objects of the realm that formats the stack (the
  // outer one): a job that could set it would hold outer objects. So it is fixed first of all.
  Object.defineProperty(Error, "prepareStackTrace", { value: undefined, writable: false, enumerable: false, configurable: false });

  // -- primordials
  const G = globalThis;
  const { apply, getOwnPropertyDescriptor: getDesc, getPrototypeOf, ownKeys } = Reflect;
  // V8 makes some globals (Temporal) on first access, with the intrinsics of the context that
  // touches them first: if the outer read one first, an outer object would sit on this global.
  // So every global property is touched here, from inside, before anyone else can.
  // (V8 15: Temporal and Date.prototype.toTemporalInstant; the harness's graph walk, made from
  // outside after a job, finds any other.)
  const globalKeys = ownKeys(G);
  for (let i = 0; i < globalKeys.length; i++) getDesc(G, globalKeys[i]);
  getDesc(Date.prototype, "toTemporalInstant");
  const { defineProperty, setPrototypeOf } = Object; // these two throw (or return the object)
  const reflectGet = Reflect.get, reflectHas = Reflect.has, reflectSet = Reflect.set;
  const hasOwn = Object.hasOwn, ObjectIs = Object.is, ObjectProto = Object.prototype;
  const isArray = Array.isArray, arraySort = Array.prototype.sort, arrayJoin = Array.prototype.join;
  const arrayValues = Array.prototype.values;
  const jsonStringify = JSON.stringify, jsonParse = JSON.parse;
  const StringCtor = String, NumberCtor = Number, ErrorCtor = Error, TypeErrorCtor = TypeError;
  const RangeErrorCtor = RangeError, PromiseCtor = Promise, MapCtor = Map, ProxyCtor = Proxy;
  const WeakMapCtor = WeakMap, Uint8ArrayCtor = Uint8Array, Int32ArrayCtor = Int32Array;
  const isError = Error.isError, hasInstance = Function.prototype[Symbol.hasInstance];
  const fnToString = Function.prototype.toString, SymIterator = Symbol.iterator;
  const promiseThen = Promise.prototype.then;
  const mapGet = Map.prototype.get, mapSet = Map.prototype.set, mapDelete = Map.prototype.delete;
  const mapEntries = Map.prototype.entries, setValues = Set.prototype.values;
  const mapSize = getDesc(Map.prototype, "size").get, setSize = getDesc(Set.prototype, "size").get;
  const mapIterNext = getPrototypeOf(new Map().entries()).next;
  const setIterNext = getPrototypeOf(new Set().values()).next;
  const weakGet = WeakMap.prototype.get, weakSet = WeakMap.prototype.set;
  const strSlice = String.prototype.slice, charCodeAt = String.prototype.charCodeAt;
  const toLowerCase = String.prototype.toLowerCase, toUpperCase = String.prototype.toUpperCase;
  const fromCharCode = String.fromCharCode, regexpExec = RegExp.prototype.exec;
  const dateGetTime = Date.prototype.getTime, symDescription = getDesc(Symbol.prototype, "description").get;
  const reSource = getDesc(RegExp.prototype, "source").get, reFlags = getDesc(RegExp.prototype, "flags").get;
  const TypedArrayProto = getPrototypeOf(Uint8Array.prototype);
  const taBuffer = getDesc(TypedArrayProto, "buffer").get, taOffset = getDesc(TypedArrayProto, "byteOffset").get;
  const taByteLength = getDesc(TypedArrayProto, "byteLength").get, taLength = getDesc(TypedArrayProto, "length").get;
  const dvBuffer = getDesc(DataView.prototype, "buffer").get, dvOffset = getDesc(DataView.prototype, "byteOffset").get;
  const dvByteLength = getDesc(DataView.prototype, "byteLength").get, isView = ArrayBuffer.isView;
  const abByteLength = getDesc(ArrayBuffer.prototype, "byteLength").get;
  const sabByteLength = getDesc(SharedArrayBuffer.prototype, "byteLength").get;
  const toBase64 = Uint8Array.prototype.toBase64, fromBase64 = Uint8Array.fromBase64;
  const atomicsAdd = Atomics.add, atomicsNotify = Atomics.notify;
  const atomicsLoad = Atomics.load, atomicsStore = Atomics.store, taSet = TypedArrayProto.set;
  const indirectEval = G.eval;
  const nativeQueueMicrotask = G.queueMicrotask;
  const AsyncFunctionProto = getPrototypeOf(async function () {});
  const AsyncFunction = AsyncFunctionProto.constructor;
  const GeneratorProto = getPrototypeOf(function* () {}), AsyncGeneratorProto = getPrototypeOf(async function* () {});

  // They run realm code later, as tasks of their own, after the job ended: gone from the realm
  // now, and a job that reads one later runs in a Worker instead (the traps below).
  delete Atomics.waitAsync;
  delete G.FinalizationRegistry;
  delete G.WebAssembly;

  // -- small helpers (arrays without a prototype: a job's Array.prototype setters or toJSON
  // cannot touch them, and JSON.stringify still writes them as arrays)
  const list = () => setPrototypeOf([], null);
  const add = (a, v) => { a[a.length] = v; };
  const own = (o, k) => (o !== null && typeof o === "object" && hasOwn(o, k) ? o[k] : undefined);
  const dataValue = (d) => (d !== undefined && hasOwn(d, "value") ? d.value : undefined);
  const getterOf = (d) => (d !== undefined && hasOwn(d, "get") ? d.get : undefined);
  const test = (re, s) => apply(regexpExec, re, [s]) !== null;
  const INTERNAL = { __proto__: null }; // a key only this code holds (illegal constructors)
  const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

  function clip(text, n) {
    return text.length > n ? apply(strSlice, text, [0, n]) + "…" : text;
  }

  // worker.js describe(), the same texts
  function describe(err) {
    try {
      if (apply(hasInstance, ErrorCtor, [err])) {
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

  // -- the outgoing queue and its doorbell
  const sab = new SharedArrayBuffer(16);
  const bell = new Int32ArrayCtor(sab);
  let outbox = list();
  function queue(msg) {
    add(outbox, msg);
    atomicsAdd(bell, 0, 1);
    atomicsNotify(bell, 0);
  }
  // What Deno says of an error nobody caught (a timer's throw, an unhandled rejection): an
  // Error as "Name: message", anything else as Deno.inspect prints it (the outer does that, from
  // a tree): `Uncaught "plain"`, `Uncaught (in promise) { a: 1 }`.
  function uncaughtShape(value) {
    try {
      if (apply(hasInstance, ErrorCtor, [value])) {
        const name = StringCtor(value.name ?? "Error");
        const message = StringCtor(value.message ?? "");
        return { __proto__: null, err: clip(message ? `${name}: ${message}` : name, 600) };
      }
      return { __proto__: null, v: valueTree(value) };
    } catch {
      return { __proto__: null, err: "an unprintable value was thrown" };
    }
  }
  function reportUncaught(err) {
    queue({ __proto__: null, t: "uncaught", ...uncaughtShape(err) });
  }

  // -- console: each value goes out as a tree of primitives; the outer rebuilds and inspects it
  // (runtime/realm_console.js). The tree says what Deno.inspect would look at: the kind of
  // object (boxed primitive, typed array, buffer, iterator, error, ...), its constructor's name,
  // its Symbol.toStringTag, its own enumerable properties (symbol keys too), so that the outer
  // can rebuild an object of the same kind that a fresh Worker's Deno.inspect prints alike.
  // Custom inspectors (Deno.customInspect, nodejs.util.inspect.custom) run here, as the job's own
  // functions, with arguments made here; only the string they return goes out.
  const MAX_NODES = 2000, MAX_ITEMS = 100, MAX_DEPTH = 5, MAX_STR = 10000, MAX_CHARS = 200000;
  const MAX_BYTES = 100; // a buffer's bytes sent (Deno shows 50)
  const node = (t, v) => ({ __proto__: null, t, v });
  const SymToStringTag = Symbol.toStringTag, symKeyFor = Symbol.keyFor, SymFor = Symbol.for;
  const CUSTOM_INSPECT = [SymFor("Deno.customInspect"), SymFor("Deno.privateCustomInspect")];
  const NODE_INSPECT = SymFor("nodejs.util.inspect.custom");
  const FunctionProto = Function.prototype, numberToString = Number.prototype.toString;
  const boxes = [["num", Number.prototype.valueOf], ["str", String.prototype.valueOf],
    ["bool", Boolean.prototype.valueOf], ["big", BigInt.prototype.valueOf], ["sym", Symbol.prototype.valueOf]];
  const weakMapHas = WeakMap.prototype.has, weakSetHas = WeakSet.prototype.has;
  const taTag = getDesc(TypedArrayProto, SymToStringTag).get;
  const abDetached = getDesc(ArrayBuffer.prototype, "detached")?.get;
  // well-known symbols by name (Symbol.iterator -> "iterator"), so the outer uses its own
  const wellKnown = new MapCtor();
  {
    const names = ownKeys(Symbol);
    for (let i = 0; i < names.length; i++) {
      const s = dataValue(getDesc(Symbol, names[i]));
      if (typeof s === "symbol" && typeof names[i] === "string") apply(mapSet, wellKnown, [s, names[i]]);
    }
  }
  // iterators and generator objects: Deno shows their tag (their items cannot be read without
  // consuming them), so only which kind goes out
  const iterProtos = new MapCtor();
  const noteIter = (make, name) => { try { apply(mapSet, iterProtos, [getPrototypeOf(make()), name]); } catch { /* absent */ } };
  noteIter(() => apply(arrayValues, [], []), "Array Iterator");
  noteIter(() => apply(mapEntries, new MapCtor(), []), "Map Iterator");
  noteIter(() => apply(setValues, new Set(), []), "Set Iterator");
  noteIter(() => ""[SymIterator](), "String Iterator");
  noteIter(() => /a/[Symbol.matchAll](""), "RegExp String Iterator");
  noteIter(() => apply(arrayValues, [], []).map((x) => x), "Iterator Helper");
  noteIter(() => getPrototypeOf((function* () {})()), "Generator");
  noteIter(() => getPrototypeOf((async function* () {})()), "AsyncGenerator");
  // the built-in error classes, by prototype
  const errorProtos = new MapCtor();
  for (const C of [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError]) {
    apply(mapSet, errorProtos, [C.prototype, fnName(C)]);
  }
  const INDEX = /^(?:0|[1-9][0-9]*)$/;
  const isIndex = (k, below) => typeof k === "string" && test(INDEX, k) && NumberCtor(k) < below;

  function cutText(s, st) {
    const room = MAX_CHARS - st.chars;
    const n = room < MAX_STR ? (room > 0 ? room : 0) : MAX_STR;
    const out = s.length > n ? apply(strSlice, s, [0, n]) : s;
    st.chars += out.length;
    return out;
  }
  function numText(n) {
    if (n !== n) return "NaN";
    if (ObjectIs(n, -0)) return "-0";
    return StringCtor(n); // "Infinity", "-Infinity", "1.5"
  }
  function fnName(f) {
    const v = dataValue(getDesc(f, "name"));
    return typeof v === "string" ? clip(v, 200) : "";
  }
  function fnKind(f) {
    const p = getPrototypeOf(f);
    if (p === AsyncFunctionProto) return "async";
    if (p === GeneratorProto) return "generator";
    if (p === AsyncGeneratorProto) return "asyncgenerator";
    const src = apply(strSlice, apply(fnToString, f, []), [0, 6]);
    return test(/^class[\s{]/, src) ? "class" : "function";
  }
  function clsOf(v) {
    let p = getPrototypeOf(v);
    for (let i = 0; p !== null && p !== ObjectProto && i < 50; i++) {
      const c = dataValue(getDesc(p, "constructor"));
      if (typeof c === "function") {
        const name = fnName(c);
        return name === "" || name === "Object" ? null : name;
      }
      p = getPrototypeOf(p);
    }
    return null;
  }
  function symNode(s) {
    const d = apply(symDescription, s, []);
    const n = node("sym", typeof d === "string" ? clip(d, 200) : null);
    const known = apply(mapGet, wellKnown, [s]);
    if (known !== undefined) n.wk = known;
    else if (symKeyFor(s) !== undefined) n.reg = true;
    return n;
  }
  // what a getter or a job's function gives, or `fallback` when it throws
  function read(v, k, fallback) {
    try { return reflectGet(v, k, v); } catch { return fallback; }
  }

  function tree(v, st, depth) {
    st.nodes++;
    switch (typeof v) {
      case "string": return node("str", cutText(v, st));
      case "number": return node("num", numText(v));
      case "bigint": return node("big", StringCtor(v));
      case "boolean": return node("bool", v);
      case "undefined": return { __proto__: null, t: "undef" };
      case "symbol": return symNode(v);
      default: break;
    }
    if (v === null) return { __proto__: null, t: "null" };
    try {
      return objectTree(v, st, depth);
    } catch {
      return node("str", "[unprintable]"); // a throwing Proxy trap or getter
    }
  }

  // Deno calls a custom inspector before anything else (a function, an array, an Error too):
  // Deno.customInspect(inspect, options) printed as String(result), nodejs.util.inspect.custom
  // (depth, options, inspect) printed verbatim if a string, else inspected in its place.
  // A throw ends the whole console argument in a Worker ("[unprintable]"), or, nested, prints
  // "[Internal Formatting Error] ..." there: the outer rebuilds an inspector that throws the same.
  function customTree(v, st, depth) {
    for (let i = 0; i < CUSTOM_INSPECT.length; i++) {
      const key = CUSTOM_INSPECT[i];
      if (!reflectHas(v, key)) continue;
      let f;
      try { f = reflectGet(v, key, v); } catch (err) { return throwsTree(v, err, st, depth); }
      if (typeof f !== "function") continue;
      try {
        return node("custom", cutText(StringCtor(apply(f, v, [realmInspect, inspectOptions(depth, true)])), st));
      } catch (err) {
        return throwsTree(v, err, st, depth);
      }
    }
    if (!reflectHas(v, NODE_INSPECT)) return undefined;
    let f;
    try { f = reflectGet(v, NODE_INSPECT, v); } catch (err) { return throwsTree(v, err, st, depth); }
    if (typeof f !== "function") return undefined;
    let out;
    try {
      out = apply(f, v, [4 - depth, inspectOptions(depth, false), realmInspect]);
    } catch (err) {
      return throwsTree(v, err, st, depth);
    }
    if (typeof out === "string") return node("custom", cutText(out, st));
    if (out === v) return undefined;
    if (st.nodes >= MAX_NODES) return node("custom", "");
    return tree(out, st, depth);
  }
  function throwsTree(v, err, st, depth) {
    // (cls: V8 names a rejection's reason `#<Cls>` when Deno cannot print it)
    const n = { __proto__: null, t: "throws", cls: typeof v === "function" ? "Function" : clsOf(v) ?? "Object", err: undefined };
    n.err = st.nodes < MAX_NODES ? tree(err, st, depth + 1) : { __proto__: null, t: "undef" };
    return n;
  }
  // Deno's options for a custom inspector, made here (never the outer's)
  function inspectOptions(depth, deno) {
    const stylize = (s) => s;
    if (!deno) {
      return {
        stylize, showHidden: false, depth: 4, colors: false, customInspect: true, showProxy: false,
        maxArrayLength: 50, maxStringLength: 2000, breakLength: 80, compact: 3, sorted: false, getters: false,
        numericSeparator: false,
      };
    }
    return {
      stylize, showHidden: false, depth: 4, colors: false, customInspect: true, showProxy: false,
      maxArrayLength: 50, maxStringLength: 2000, breakLength: 80, compact: 3, sorted: false, getters: false,
      indentationLvl: depth * 2, currentDepth: depth, indentLevel: 0, escapeSequences: true, trailingComma: false,
      iterableLimit: 50, strAbbreviateSize: 2000, quotes: ["\"", "'", "`"], seen: [], budget: {}, inspect: realmInspect,
    };
  }
  // The `inspect` a custom inspector gets: Deno's text for primitives and for small flat arrays
  // and objects of primitives; anything else as String(value).
  function quoteText(s) {
    let control = false;
    for (let i = 0; i < s.length && !control; i++) { const c = apply(charCodeAt, s, [i]); control = c < 32 || c === 127; }
    const q = !test(/"/, s) ? "\"" : !test(/'/, s) ? "'" : !test(/`/, s) ? "`" : null;
    if (control || q === null) return jsonStringify(s);
    let out = q;
    for (let i = 0; i < s.length; i++) out += apply(charCodeAt, s, [i]) === 92 ? "\\\\" : s[i];
    return out + q;
  }
  function primitiveText(v) {
    switch (typeof v) {
      case "string": return quoteText(v);
      case "number": return numText(v);
      case "bigint": return StringCtor(v) + "n";
      case "symbol": { const d = apply(symDescription, v, []); return `Symbol(${d ?? ""})`; }
      case "function": { const n = fnName(v); return n ? `[Function: ${n}]` : "[Function (anonymous)]"; }
      default: return v === null || typeof v !== "object" ? StringCtor(v) : undefined;
    }
  }
  // Deno's one-line form of a small array or plain object (at most 6 entries, two levels, that
  // fits in 80 columns), or undefined
  function smallText(v, level) {
    const p = primitiveText(v);
    if (p !== undefined) return p;
    const arr = isArray(v);
    if (level > 1 || (!arr && getPrototypeOf(v) !== ObjectProto)) return undefined;
    const keys = ownKeys(v), parts = list();
    let total = 0;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (arr && k === "length") continue;
      const d = getDesc(v, k);
      if (typeof k !== "string" || !d.enumerable || !hasOwn(d, "value") || parts.length >= 6) return undefined;
      if (arr && k !== StringCtor(parts.length)) return undefined;
      const text = smallText(d.value, level + 1);
      if (text === undefined) return undefined;
      const piece = arr ? text : `${test(IDENT, k) ? k : quoteText(k)}: ${text}`;
      total += piece.length;
      add(parts, piece);
    }
    if (parts.length === 0) return arr ? "[]" : "{}";
    if (total + parts.length * 2 + 11 + level * 2 > 80) return undefined;
    return arr ? `[ ${apply(arrayJoin, parts, [", "])} ]` : `{ ${apply(arrayJoin, parts, [", "])} }`;
  }
  function realmInspect(v) {
    try {
      const text = smallText(v, 0);
      return text !== undefined ? text : StringCtor(v);
    } catch {
      return "[object]";
    }
  }

  // own enumerable properties (string keys, then symbol keys, as ownKeys gives them); `skip(k)`
  // leaves out the ones the kind shows itself (an array's items)
  function entriesOf(v, st, depth, skip) {
    const keys = ownKeys(v);
    const entries = list();
    let more = 0;
    const scan = keys.length < 10000 ? keys.length : 10000; // beyond: counted, not looked at
    for (let i = 0; i < scan; i++) {
      const k = keys[i];
      if (skip !== undefined && skip(k)) continue;
      const d = getDesc(v, k);
      if (d === undefined || !d.enumerable) continue;
      if (entries.length >= MAX_ITEMS || st.nodes >= MAX_NODES) {
        more++;
        continue;
      }
      const e = list();
      add(e, typeof k === "string" ? k : symNode(k));
      if (hasOwn(d, "value")) {
        add(e, tree(d.value, st, depth + 1));
      } else {
        st.nodes++; // an accessor is shown as such; it is never called
        add(e, { __proto__: null, t: "acc", get: getterOf(d) !== undefined, set: hasOwn(d, "set") && d.set !== undefined });
      }
      add(entries, e);
    }
    more += keys.length - scan;
    return { __proto__: null, entries, more };
  }
  // the Symbol.toStringTag that an object of a node's kind has anyway (not sent)
  const FN_TAGS = { __proto__: null, async: "AsyncFunction", generator: "GeneratorFunction", asyncgenerator: "AsyncGeneratorFunction" };
  function naturalTag(n) {
    switch (n.t) {
      case "map": return "Map";
      case "set": return "Set";
      case "ta": case "weak": case "iter": return n.kind;
      case "ab": return n.shared ? "SharedArrayBuffer" : "ArrayBuffer";
      case "dv": return "DataView";
      case "box": return n.v.t === "sym" ? "Symbol" : n.v.t === "big" ? "BigInt" : undefined;
      case "fn": return FN_TAGS[n.kind];
      default: return undefined;
    }
  }
  // extra fields of a node: its own properties and its Symbol.toStringTag (a job's getter runs,
  // as Deno runs it)
  // (`big`: an array or typed array too long to list its keys -- ownKeys would make one per
  // item -- whose other properties are then not shown)
  const NO_PROPS = { __proto__: null, entries: list(), more: 0 };
  const MAX_KEYED_ITEMS = 100000;
  function withProps(n, v, st, depth, skip, big = false) {
    const e = big ? NO_PROPS : entriesOf(v, st, depth, skip);
    // a plain object's are its `entries`; a Map's entries are its items, so others' are `props`
    if (n.t === "obj") {
      n.entries = e.entries;
      n.more = e.more;
    } else if (e.entries.length > 0 || e.more > 0) {
      n.props = e.entries;
      n.pmore = e.more;
    }
    const tag = read(v, SymToStringTag, undefined);
    if (typeof tag === "string" && tag !== naturalTag(n)) n.tag = clip(tag, 200);
    return n;
  }

  function objectTree(v, st, depth) {
    const seen = apply(mapGet, st.path, [v]);
    if (seen !== undefined) return { __proto__: null, t: "cyc", id: seen };
    if (depth <= MAX_DEPTH && st.nodes < MAX_NODES) { // Deno never looks deeper
      const custom = customTree(v, st, depth);
      if (custom !== undefined) return custom;
    }
    const arr = isArray(v);
    if (depth > MAX_DEPTH || st.nodes >= MAX_NODES) {
      if (typeof v === "function") return { __proto__: null, t: "fn", id: 0, name: fnName(v), kind: fnKind(v), ext: null };
      return { __proto__: null, t: "cut", kind: typeof v === "function" ? "fn" : arr ? "arr" : "obj", cls: clsOf(v) };
    }
    const id = ++st.ids;
    apply(mapSet, st.path, [v, id]);
    try {
      if (typeof v === "function") return fnTree(v, st, depth, id);
      if (isError(v) || errorBase(v) !== undefined) return errorTree(v, st, depth, id);
      if (arr) return arrayTree(v, st, depth, id);
      const kind = kindTree(v, st, depth, id);
      if (kind !== undefined) return kind;
      return plainTree(v, st, depth, id);
    } finally {
      apply(mapDelete, st.path, [v]);
    }
  }

  function fnTree(v, st, depth, id) {
    const n = { __proto__: null, t: "fn", id, name: fnName(v), kind: fnKind(v), ext: null, nullproto: getPrototypeOf(v) === null };
    if (n.kind === "class") {
      // Deno: `[class B extends A]`, A being the name of B's prototype
      const p = getPrototypeOf(v);
      const sup = p !== null && p !== FunctionProto ? read(p, "name", "") : "";
      if (typeof sup === "string" && sup !== "") n.ext = clip(sup, 200);
    }
    return withProps(n, v, st, depth, undefined);
  }

  // Deno prints as an error whatever inherits from Error.prototype: the nearest built-in class
  function errorBase(v) {
    for (let p = getPrototypeOf(v), i = 0; p !== null && i < 50; p = getPrototypeOf(p), i++) {
      const b = apply(mapGet, errorProtos, [p]);
      if (b !== undefined) return b;
    }
    return undefined;
  }
  function errorTree(v, st, depth, id) {
    const field = (k) => { const x = read(v, k, ""); try { return cutText(StringCtor(x ?? ""), st); } catch { return "[unprintable]"; } };
    const stack = read(v, "stack", undefined);
    const base = errorBase(v) ?? "Error";
    const n = {
      __proto__: null, t: "err", id, name: field("name"), message: field("message"),
      stack: typeof stack === "string" ? cutText(stack, st) : null, cls: clsOf(v), base,
    };
    // Deno prints `[cause]` when "cause" in error, `[errors]` when error.errors is an array
    if (reflectHas(v, "cause")) n.cause = tree(read(v, "cause", undefined), st, depth + 1);
    const errors = read(v, "errors", undefined);
    if (isArray(errors)) n.errors = tree(errors, st, depth + 1);
    return withProps(n, v, st, depth, undefined);
  }

  function arrayTree(v, st, depth, id) {
    const len = NumberCtor(v.length) || 0;
    const items = list();
    let i = 0, holes = 0;
    for (; i < len && i < MAX_ITEMS && st.nodes < MAX_NODES; i++) {
      const d = getDesc(v, StringCtor(i));
      if (d === undefined) { st.nodes++; holes++; add(items, { __proto__: null, t: "hole" }); continue; }
      add(items, hasOwn(d, "value") ? tree(d.value, st, depth + 1) : { __proto__: null, t: "undef" });
    }
    const n = { __proto__: null, t: "arr", id, items, more: len - i };
    // A sparse array: Deno counts a run of holes as one entry, so items past the first ones may
    // show; they go as [index, value] (ownKeys lists the indices there are, in order).
    if (holes > 0 && i < len && len <= MAX_KEYED_ITEMS) {
      const keys = ownKeys(v), tail = list();
      for (let k = 0; k < keys.length && tail.length < MAX_ITEMS && st.nodes < MAX_NODES; k++) {
        if (!isIndex(keys[k], len)) break;
        const at = NumberCtor(keys[k]);
        if (at < i) continue;
        const d = getDesc(v, keys[k]);
        const e = list();
        add(e, at);
        add(e, d !== undefined && hasOwn(d, "value") ? tree(d.value, st, depth + 1) : { __proto__: null, t: "undef" });
        add(tail, e);
      }
      n.tail = tail;
    }
    const cls = clsOf(v);
    if (cls !== "Array") n.cls = cls;
    // index keys are the items; `length` is not enumerable
    return withProps(n, v, st, depth, (k) => isIndex(k, 4294967295), len > MAX_KEYED_ITEMS);
  }

  // the kinds of object Deno prints by their internal slots, or undefined
  function kindTree(v, st, depth, id) {
    let ms = null;
    try { ms = apply(dateGetTime, v, []); } catch { /* not a Date */ }
    if (ms !== null) return withProps({ __proto__: null, t: "date", id, v: ms === ms ? ms : null }, v, st, depth, undefined);
    let src = null;
    try { src = apply(reSource, v, []); } catch { /* not a RegExp */ }
    if (src !== null) {
      const n = { __proto__: null, t: "re", id, src: cutText(src, st), flags: StringCtor(apply(reFlags, v, [])) };
      return withProps(n, v, st, depth, (k) => k === "lastIndex");
    }
    for (let i = 0; i < boxes.length; i++) {
      let prim;
      try { prim = apply(boxes[i][1], v, []); } catch { continue; }
      const n = { __proto__: null, t: "box", id, v: tree(prim, st, depth + 1) };
      const len = typeof prim === "string" ? prim.length : 0;
      return withProps(n, v, st, depth, (k) => isIndex(k, len), len > MAX_KEYED_ITEMS);
    }
    let size = -1;
    try { size = apply(mapSize, v, []); } catch { /* not a Map */ }
    if (size >= 0) return withProps(iterTree("map", apply(mapEntries, v, []), mapIterNext, size, st, depth, id), v, st, depth, undefined);
    try { size = apply(setSize, v, []); } catch { /* not a Set */ }
    if (size >= 0) return withProps(iterTree("set", apply(setValues, v, []), setIterNext, size, st, depth, id), v, st, depth, undefined);
    try { apply(weakMapHas, v, [ObjectProto]); return withProps({ __proto__: null, t: "weak", id, kind: "WeakMap" }, v, st, depth, undefined); } catch { /* no */ }
    try { apply(weakSetHas, v, [ObjectProto]); return withProps({ __proto__: null, t: "weak", id, kind: "WeakSet" }, v, st, depth, undefined); } catch { /* no */ }
    const ta = apply(taTag, v, []);
    if (typeof ta === "string") {
      const len = apply(taLength, v, []);
      const items = list();
      for (let i = 0; i < len && i < MAX_ITEMS; i++) add(items, typeof v[i] === "bigint" ? StringCtor(v[i]) : numText(v[i]));
      st.nodes += items.length;
      return withProps({ __proto__: null, t: "ta", id, kind: ta, len, items }, v, st, depth, (k) => isIndex(k, len), len > MAX_KEYED_ITEMS);
    }
    const buffer = bufferTree(v, st, id);
    if (buffer !== undefined) return withProps(buffer, v, st, depth, undefined);
    let dv = null;
    try { dv = apply(dvBuffer, v, []); } catch { /* not a DataView */ }
    if (dv !== null) {
      const n = { __proto__: null, t: "dv", id, off: apply(dvOffset, v, []), len: apply(dvByteLength, v, []), buf: tree(dv, st, depth + 1) };
      return withProps(n, v, st, depth, undefined);
    }
    for (let p = getPrototypeOf(v), i = 0; p !== null && i < 50; p = getPrototypeOf(p), i++) {
      const it = apply(mapGet, iterProtos, [p]);
      if (it !== undefined) return withProps({ __proto__: null, t: "iter", id, kind: it, cls: clsOf(v) }, v, st, depth, undefined);
    }
    return undefined;
  }
  function bufferTree(v, st, id) {
    let len = -1, shared = false;
    try { len = apply(abByteLength, v, []); } catch { /* not an ArrayBuffer */ }
    if (len < 0) {
      try { len = apply(sabByteLength, v, []); shared = true; } catch { return undefined; }
    }
    const detached = !shared && abDetached !== undefined && apply(abDetached, v, []) === true;
    let hex = "";
    if (!detached) {
      const bytes = new Uint8ArrayCtor(v, 0, len < MAX_BYTES ? len : MAX_BYTES);
      for (let i = 0; i < bytes.length; i++) hex += apply(strSlice, "0" + apply(numberToString, bytes[i], [16]), [-2]);
    }
    st.nodes++;
    return { __proto__: null, t: "ab", id, shared, detached, len, hex };
  }

  function iterTree(t, it, next, size, st, depth, id) {
    const items = list();
    let i = 0;
    for (; i < MAX_ITEMS && st.nodes < MAX_NODES; i++) {
      const r = apply(next, it, []);
      if (r.done) break;
      if (t === "map") {
        const e = list();
        add(e, tree(r.value[0], st, depth + 1));
        add(e, tree(r.value[1], st, depth + 1));
        add(items, e);
      } else {
        add(items, tree(r.value, st, depth + 1));
      }
    }
    const more = size - i > 0 ? size - i : 0;
    return t === "map" ? { __proto__: null, t, id, entries: items, more } : { __proto__: null, t, id, items, more };
  }

  function plainTree(v, st, depth, id) {
    const proto = getPrototypeOf(v);
    const n = { __proto__: null, t: "obj", id, cls: proto === null ? null : clsOf(v), nullproto: proto === null };
    return withProps(n, v, st, depth, undefined);
  }

  function valueTree(value) {
    const st = { __proto__: null, nodes: 1, ids: 0, chars: 0, path: new MapCtor() };
    return tree(value, st, 0);
  }

  function logParts(args, first) {
    const parts = list();
    const st = { __proto__: null, nodes: 0, ids: 0, chars: 0, path: new MapCtor() };
    if (first !== undefined) add(parts, { __proto__: null, s: first });
    for (let i = 0; i < args.length && st.nodes < MAX_NODES; i++) {
      const a = args[i];
      st.nodes++;
      add(parts, typeof a === "string" ? { __proto__: null, s: cutText(a, st) } : { __proto__: null, v: tree(a, st, 0) });
    }
    return parts;
  }
  // Every log line also goes to a buffer the host reads if this thread never yields again (a
  // job that spins until its deadline: the outer side never gets to take the queue then). The
  // outer side marks how far it has passed lines on; the host reads only what is past that.
  const RING_BYTES = 1 << 18;
  const ring = new SharedArrayBuffer(RING_BYTES);
  const ringHead = new Int32ArrayCtor(ring, 0, 2); // [0] bytes written, [1] bytes passed on
  const ringBytes = new Uint8ArrayCtor(ring, 8);
  function queueLog(msg) {
    let end = -1;
    try {
      const bytes = utf8Encode(jsonStringify(msg));
      const n = apply(taLength, bytes, []), at = atomicsLoad(ringHead, 0);
      if (at + 4 + n <= RING_BYTES - 8) {
        ringBytes[at] = n >>> 24; ringBytes[at + 1] = (n >>> 16) & 255;
        ringBytes[at + 2] = (n >>> 8) & 255; ringBytes[at + 3] = n & 255;
        apply(taSet, ringBytes, [bytes, at + 4]);
        end = at + 4 + n;
        atomicsStore(ringHead, 0, end);
      }
    } catch { /* the queue still has it */ }
    msg.end = end;
    queue(msg);
  }
  const logger = (level) => (...args) => {
    queueLog({ __proto__: null, t: "log", level, parts: logParts(args) });
  };
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
      if (!cond) queueLog({ __proto__: null, t: "log", level: "error", parts: logParts(args, "Assertion failed") });
    },
  };
  for (const name of ["group", "groupCollapsed", "groupEnd", "time", "timeEnd", "timeLog", "count", "countReset", "clear"]) {
    sandboxConsole[name] = () => {};
  }

  // -- timers: the outer arms real ones and delivers {"t":"timer","id"} when one fires
  const timers = new MapCtor();
  let nextTimer = 1;
  // A job's Worker has Node's timers (the Worker touched `process`): a callback that is not a
  // function is Node's TypeError there, so such a job goes to a Worker; the handle is a Timeout.
  class Timeout {
    #id;
    constructor(key, id) {
      if (key !== INTERNAL) throw new TypeErrorCtor("Illegal constructor");
      this.#id = id;
    }
    ref() { return this; }
    unref() { return this; }
    hasRef() { return true; }
    refresh() {
      const timer = apply(mapGet, timers, [this.#id]);
      if (timer !== undefined) {
        queue({ __proto__: null, t: "clear", id: this.#id });
        queue({ __proto__: null, t: "timer", id: this.#id, ms: timer.ms });
      }
      return this;
    }
    close() { disarm(this.#id); return this; }
    [Symbol.toPrimitive]() { return this.#id; }
  }
  function arm(callback, ms, args, repeat, name) {
    if (typeof callback !== "function") throw notHere(name);
    let delay = NumberCtor(ms) | 0; // WebIDL long, as Deno
    if (delay < 0) delay = 0;
    const id = nextTimer++;
    apply(mapSet, timers, [id, { __proto__: null, cb: callback, args, ms: delay, repeat }]);
    queue({ __proto__: null, t: "timer", id, ms: delay });
    return new Timeout(INTERNAL, id);
  }
  function disarm(id) {
    const n = NumberCtor(id) | 0;
    if (apply(mapDelete, timers, [n])) queue({ __proto__: null, t: "clear", id: n });
  }
  function fire(id) {
    const timer = apply(mapGet, timers, [id]);
    if (timer === undefined) return;
    if (!timer.repeat) apply(mapDelete, timers, [id]);
    try {
      apply(timer.cb, G, timer.args);
    } catch (err) {
      reportUncaught(err);
    }
    if (timer.repeat && apply(mapGet, timers, [id]) === timer) queue({ __proto__: null, t: "timer", id, ms: timer.ms });
  }
  const timerFunctions = {
    setTimeout: (callback, ms = 0, ...args) => arm(callback, ms, args, false, "setTimeout"),
    setInterval: (callback, ms = 0, ...args) => arm(callback, ms, args, true, "setInterval"),
    clearTimeout: (id = 0) => disarm(id),
    clearInterval: (id = 0) => disarm(id),
  };

  // -- bytes and text (the realm has no TextEncoder/TextDecoder)
  function utf8Encode(s) {
    const out = new Uint8ArrayCtor(s.length * 3); // at most 3 bytes per UTF-16 unit
    let j = 0;
    for (let i = 0; i < s.length; i++) {
      let c = apply(charCodeAt, s, [i]);
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = c <= 0xdbff && i + 1 < s.length ? apply(charCodeAt, s, [i + 1]) : 0;
        if ((d & 0xfc00) === 0xdc00) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; } else c = 0xfffd;
      }
      if (c < 0x80) out[j++] = c;
      else if (c < 0x800) { out[j++] = 0xc0 | (c >> 6); out[j++] = 0x80 | (c & 63); }
      else if (c < 0x10000) { out[j++] = 0xe0 | (c >> 12); out[j++] = 0x80 | ((c >> 6) & 63); out[j++] = 0x80 | (c & 63); }
      else { out[j++] = 0xf0 | (c >> 18); out[j++] = 0x80 | ((c >> 12) & 63); out[j++] = 0x80 | ((c >> 6) & 63); out[j++] = 0x80 | (c & 63); }
    }
    return new Uint8ArrayCtor(new Uint8ArrayCtor(apply(taBuffer, out, []), 0, j));
  }
  // WHATWG UTF-8 decode (BOM dropped, each maximal invalid subpart -> U+FFFD), as Response.text()
  function utf8Decode(b) {
    const len = apply(taLength, b, []);
    let out = "";
    let units = list();
    const flush = () => { out += apply(fromCharCode, null, units); units = list(); };
    let i = len >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
    while (i < len) {
      const c = b[i++];
      let need = 0, cp = c, lo = 0x80, hi = 0xbf;
      if (c >= 0x80) {
        if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 0xf; if (c === 0xe0) lo = 0xa0; if (c === 0xed) hi = 0x9f; }
        else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 7; if (c === 0xf0) lo = 0x90; if (c === 0xf4) hi = 0x8f; }
        else { need = -1; cp = 0xfffd; }
        for (let k = 0; k < need; k++) {
          if (i >= len || b[i] < lo || b[i] > hi) { cp = 0xfffd; break; }
          cp = (cp << 6) | (b[i++] & 0x3f);
          lo = 0x80; hi = 0xbf;
        }
      }
      if (cp >= 0x10000) { add(units, 0xd800 + ((cp - 0x10000) >> 10)); add(units, 0xdc00 + ((cp - 0x10000) & 0x3ff)); }
      else add(units, cp);
      if (units.length >= 8192) flush();
    }
    flush();
    return out;
  }
  // A copy of the bytes of an ArrayBuffer, SharedArrayBuffer, TypedArray or DataView; else null.
  function bytesOf(x) {
    if (x === null || typeof x !== "object") return null;
    if (isView(x)) {
      let view;
      try { view = new Uint8ArrayCtor(apply(taBuffer, x, []), apply(taOffset, x, []), apply(taByteLength, x, [])); }
      catch { view = new Uint8ArrayCtor(apply(dvBuffer, x, []), apply(dvOffset, x, []), apply(dvByteLength, x, [])); }
      return new Uint8ArrayCtor(view);
    }
    try { apply(abByteLength, x, []); } catch { try { apply(sabByteLength, x, []); } catch { return null; } }
    return new Uint8ArrayCtor(new Uint8ArrayCtor(x));
  }

  // -- Headers: names lowercased, iteration sorted with values joined by ", " (set-cookie apart)
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const isWs = (c) => c === 9 || c === 10 || c === 13 || c === 32;
  function headerName(name) {
    const s = StringCtor(name);
    if (!test(TOKEN, s)) throw new TypeErrorCtor(`Invalid header name: "${s}"`);
    return apply(toLowerCase, s, []);
  }
  function headerValue(value) {
    const s = StringCtor(value);
    let a = 0, b = s.length;
    while (a < b && isWs(apply(charCodeAt, s, [a]))) a++;
    while (b > a && isWs(apply(charCodeAt, s, [b - 1]))) b--;
    const v = apply(strSlice, s, [a, b]);
    for (let i = 0; i < v.length; i++) {
      const c = apply(charCodeAt, v, [i]);
      if (c === 0 || c === 10 || c === 13) throw new TypeErrorCtor(`Invalid header value: "${v}"`);
    }
    return v;
  }
  let headerList, headerAppend, headerGet;
  class Headers {
    #list = list(); // [name, value] pairs in insertion order
    static {
      headerList = (h) => h.#list;
      headerGet = (h, name) => {
        const n = headerName(name), l = h.#list;
        let out = null;
        for (let i = 0; i < l.length; i++) if (l[i][0] === n) out = out === null ? l[i][1] : `${out}, ${l[i][1]}`;
        return out;
      };
      headerAppend = (h, name, value) => { const p = list(); add(p, headerName(name)); add(p, headerValue(value)); add(h.#list, p); };
    }
    constructor(init = undefined) {
      if (init === undefined || init === null) return;
      if (typeof init !== "object" && typeof init !== "function") throw new TypeErrorCtor("Failed to construct 'Headers': Argument 1 can not be converted to sequence or record.");
      if (#list in init) {
        for (let i = 0; i < init.#list.length; i++) headerAppend(this, init.#list[i][0], init.#list[i][1]);
      } else if (typeof init[SymIterator] === "function") {
        for (const pair of init) {
          if (pair === null || typeof pair !== "object") throw new TypeErrorCtor("Failed to construct 'Headers': Argument 1 can not be converted to sequence.");
          const items = list();
          for (const item of pair) add(items, item);
          if (items.length !== 2) throw new TypeErrorCtor(`Invalid header: length must be 2, but is ${items.length}`);
          headerAppend(this, items[0], items[1]);
        }
      } else {
        const keys = ownKeys(init);
        for (let i = 0; i < keys.length; i++) {
          const d = typeof keys[i] === "string" ? getDesc(init, keys[i]) : undefined;
          if (d !== undefined && d.enumerable) headerAppend(this, keys[i], init[keys[i]]);
        }
      }
    }
    append(name, value) { headerAppend(this, name, value); }
    delete(name) {
      const n = headerName(name), kept = list();
      for (let i = 0; i < this.#list.length; i++) if (this.#list[i][0] !== n) add(kept, this.#list[i]);
      this.#list = kept;
    }
    get(name) { return headerGet(this, name); }
    getSetCookie() { return column(this.#list, 1, "set-cookie"); }
    has(name) { return headerGet(this, name) !== null; }
    set(name, value) {
      const n = headerName(name), v = headerValue(value), kept = list();
      let done = false;
      for (let i = 0; i < this.#list.length; i++) {
        if (this.#list[i][0] !== n) add(kept, this.#list[i]);
        else if (!done) { const p = list(); add(p, n); add(p, v); add(kept, p); done = true; }
      }
      if (!done) { const p = list(); add(p, n); add(p, v); add(kept, p); }
      this.#list = kept;
    }
    forEach(callback, thisArg = undefined) {
      const pairs = sortedPairs(this);
      for (let i = 0; i < pairs.length; i++) apply(callback, thisArg, [pairs[i][1], pairs[i][0], this]);
    }
    entries() { return apply(arrayValues, sortedPairs(this), []); }
    keys() { return apply(arrayValues, column(sortedPairs(this), 0), []); }
    values() { return apply(arrayValues, column(sortedPairs(this), 1), []); }
  }
  // One column of [name, value] pairs (of those named `only`), as an ordinary array the job keeps.
  const pushTo = (a, v) => defineProperty(a, a.length, { value: v, writable: true, enumerable: true, configurable: true });
  function column(pairs, k, only = null) {
    const out = [];
    for (let i = 0; i < pairs.length; i++) if (only === null || pairs[i][0] === only) pushTo(out, pairs[i][k]);
    return out;
  }
  // What iterating a Headers gives: ordinary [name, value] arrays (the job's to keep).
  function sortedPairs(h) {
    const src = headerList(h), names = list(), out = [];
    for (let i = 0; i < src.length; i++) add(names, src[i][0]);
    apply(arraySort, names, [(a, b) => (a < b ? -1 : a > b ? 1 : 0)]);
    for (let i = 0; i < names.length; i++) {
      const n = names[i];
      if (i > 0 && names[i - 1] === n) continue;
      if (n === "set-cookie") for (let j = 0; j < src.length; j++) { if (src[j][0] === n) pushTo(out, [n, src[j][1]]); }
      else pushTo(out, [n, headerGet(h, n)]);
    }
    return out;
  }
  defineProperty(Headers.prototype, SymIterator, { value: Headers.prototype.entries, writable: true, configurable: true });

  // -- AbortSignal / AbortController
  let signalState, isSignal;
  // Deno's is a DOMException (an Error): name AbortError, code 20, tag DOMException.
  const DOMExceptionProto = { __proto__: ErrorCtor.prototype };
  defineProperty(DOMExceptionProto, Symbol.toStringTag, { value: "DOMException", configurable: true });
  function abortError() {
    const e = new ErrorCtor("The signal has been aborted");
    setPrototypeOf(e, DOMExceptionProto);
    defineProperty(e, "name", { value: "AbortError", writable: true, configurable: true });
    defineProperty(e, "code", { value: 20, writable: true, configurable: true });
    return e;
  }
  function listen(signal, fn) { add(signalState(signal).listeners, { __proto__: null, fn, once: true }); }
  function unlisten(signal, fn) {
    const st = signalState(signal), kept = list();
    for (let i = 0; i < st.listeners.length; i++) if (st.listeners[i].fn !== fn) add(kept, st.listeners[i]);
    st.listeners = kept;
  }
  function signalAbort(signal, reason) {
    const st = signalState(signal);
    if (st.aborted) return;
    st.aborted = true;
    st.reason = reason === undefined ? abortError() : reason;
    const ls = st.listeners;
    st.listeners = list();
    const event = { type: "abort", target: signal, currentTarget: signal, isTrusted: true };
    for (let i = 0; i < ls.length; i++) {
      const l = ls[i];
      if (!l.once) add(st.listeners, l);
      try {
        const fn = l.handler ? st.onabort : l.fn;
        if (typeof fn === "function") apply(fn, signal, [event]);
        else if (fn !== null && typeof fn === "object" && typeof fn.handleEvent === "function") apply(fn.handleEvent, fn, [event]);
      } catch (err) {
        reportUncaught(err); // as an event listener's error is reported, not thrown to abort()
      }
    }
  }
  class AbortSignal {
    #st = { __proto__: null, aborted: false, reason: undefined, listeners: list(), onabort: null, handler: false };
    static {
      signalState = (s) => s.#st;
      isSignal = (s) => s !== null && typeof s === "object" && #st in s;
    }
    constructor(key = undefined) {
      if (key !== INTERNAL) throw new TypeErrorCtor("Illegal constructor");
    }
    get aborted() { return this.#st.aborted; }
    get reason() { return this.#st.reason; }
    get onabort() { return this.#st.onabort; }
    set onabort(fn) {
      this.#st.onabort = typeof fn === "function" || (fn !== null && typeof fn === "object") ? fn : null;
      if (!this.#st.handler) { this.#st.handler = true; add(this.#st.listeners, { __proto__: null, handler: true, once: false }); }
    }
    throwIfAborted() { if (this.#st.aborted) throw this.#st.reason; }
    addEventListener(type, listener, options = undefined) {
      if (StringCtor(type) !== "abort" || listener === null || listener === undefined) return;
      const ls = this.#st.listeners;
      for (let i = 0; i < ls.length; i++) if (ls[i].fn === listener) return;
      const once = options !== null && typeof options === "object" && !!options.once;
      add(ls, { __proto__: null, fn: listener, once });
    }
    removeEventListener(type, listener) { if (StringCtor(type) === "abort") unlisten(this, listener); }
    static abort(reason = undefined) { const s = new AbortSignal(INTERNAL); signalAbort(s, reason); return s; }
    static timeout(ms) {
      const s = new AbortSignal(INTERNAL);
      arm(() => {
        const e = new ErrorCtor("The operation was aborted due to timeout");
        defineProperty(e, "name", { value: "TimeoutError", writable: true, configurable: true });
        signalAbort(s, e);
      }, ms, list(), false);
      return s;
    }
  }
  class AbortController {
    #signal = new AbortSignal(INTERNAL);
    get signal() { return this.#signal; }
    abort(reason = undefined) { signalAbort(this.#signal, reason); }
  }

  // -- Request / Response bodies: {text, bytes, b64}, either known; the other made on demand
  const bodies = new WeakMapCtor(); // object -> { body: null | {...}, used }
  function makeBody(x) {
    if (x === null || x === undefined) return null;
    if (typeof x === "string") return { __proto__: null, text: x, bytes: null, b64: null };
    const bytes = bytesOf(x);
    return bytes !== null ? { __proto__: null, text: null, bytes, b64: null } : { __proto__: null, text: StringCtor(x), bytes: null, b64: null };
  }
  const bodyText = (b) => (b.text !== null ? b.text : (b.text = utf8Decode(bodyBytes(b))));
  function bodyBytes(b) {
    if (b.bytes === null) b.bytes = b.b64 !== null ? apply(fromBase64, Uint8ArrayCtor, [b.b64]) : utf8Encode(b.text);
    return b.bytes;
  }
  function consume(self) {
    const st = apply(weakGet, bodies, [self]);
    if (st === undefined) throw new TypeErrorCtor("Illegal invocation");
    if (st.body === null) return null;
    if (st.used) throw new TypeErrorCtor("Body already consumed");
    st.used = true;
    return st.body;
  }
  function cloneBody(self) {
    const st = apply(weakGet, bodies, [self]);
    if (st.used) throw new TypeErrorCtor("Body is unusable");
    return st.body;
  }
  const bodyMethods = {
    async text() { const b = consume(this); return b === null ? "" : bodyText(b); },
    async json() { const b = consume(this); return jsonParse(b === null ? "" : bodyText(b)); },
    async arrayBuffer() { const b = consume(this); return apply(taBuffer, new Uint8ArrayCtor(b === null ? new Uint8ArrayCtor(0) : bodyBytes(b)), []); },
    async bytes() { const b = consume(this); return new Uint8ArrayCtor(b === null ? new Uint8ArrayCtor(0) : bodyBytes(b)); },
    get bodyUsed() { const st = apply(weakGet, bodies, [this]); return st !== undefined && st.used; },
    get body() { return null; }, // no ReadableStream in a realm
  };
  function withBody(self, body) {
    apply(weakSet, bodies, [self, { __proto__: null, body, used: false }]);
  }

  const normMethod = (m) => {
    const up = apply(toUpperCase, m, []);
    return up === "DELETE" || up === "GET" || up === "HEAD" || up === "OPTIONS" || up === "POST" || up === "PUT" ? up : m;
  };
  let requestParts;
  class Request {
    #url; #method; #headers; #signal;
    static { requestParts = (r) => ({ __proto__: null, url: r.#url, method: r.#method, headers: r.#headers, signal: r.#signal }); }
    constructor(input, init = undefined) {
      let body = null;
      if (input !== null && typeof input === "object" && #url in input) {
        this.#url = input.#url; this.#method = input.#method; this.#signal = input.#signal;
        this.#headers = new Headers(input.#headers);
        const st = apply(weakGet, bodies, [input]);
        if (st.body !== null && st.used) throw new TypeErrorCtor("Cannot construct a Request with a Request object that has already been used.");
        body = st.body;
      } else {
        this.#url = StringCtor(input); this.#method = "GET"; this.#signal = null; this.#headers = new Headers();
      }
      if (init !== undefined && init !== null) {
        if (init.method !== undefined) this.#method = normMethod(StringCtor(init.method));
        if (init.headers !== undefined) this.#headers = new Headers(init.headers);
        const signal = init.signal;
        if (signal !== undefined) {
          if (signal !== null && !isSignal(signal)) throw new TypeErrorCtor("Failed to construct 'Request': 'signal' of 'RequestInit' (Argument 2) is not of type AbortSignal");
          this.#signal = signal;
        }
        if (init.body !== undefined) {
          body = makeBody(init.body);
          if (typeof init.body === "string" && headerGet(this.#headers, "content-type") === null) headerAppend(this.#headers, "content-type", "text/plain;charset=UTF-8");
        }
      }
      if (body !== null && (this.#method === "GET" || this.#method === "HEAD")) throw new TypeErrorCtor("Request with GET/HEAD method cannot have body");
      if (this.#signal === null) this.#signal = new AbortSignal(INTERNAL);
      withBody(this, body);
    }
    get url() { return this.#url; }
    get method() { return this.#method; }
    get headers() { return this.#headers; }
    get signal() { return this.#signal; }
    clone() { cloneBody(this); return new Request(this); }
  }

  const NULL_BODY_STATUS = (s) => s === 101 || s === 103 || s === 204 || s === 205 || s === 304;
  class Response {
    #status = 200; #statusText = ""; #headers; #url = ""; #type = "default";
    constructor(body = null, init = undefined) {
      if (body === INTERNAL) { // a fetch reply, or a clone
        this.#status = init.status; this.#statusText = init.statusText; this.#headers = init.headers;
        this.#url = init.url; this.#type = init.type;
        withBody(this, init.body);
        return;
      }
      if (init !== undefined && init !== null) {
        if (init.status !== undefined) this.#status = NumberCtor(init.status) & 0xffff;
        if (init.statusText !== undefined) this.#statusText = StringCtor(init.statusText);
        if (init.headers !== undefined) this.#headers = new Headers(init.headers);
      }
      if (this.#headers === undefined) this.#headers = new Headers();
      const s = this.#status;
      if (s !== 101 && (s < 200 || s > 599)) throw new RangeErrorCtor(`The status provided (${s}) is not equal to 101 and outside the range [200, 599]`);
      const b = makeBody(body);
      if (b !== null && NULL_BODY_STATUS(s)) throw new TypeErrorCtor("Response with null body status cannot have body");
      if (typeof body === "string" && headerGet(this.#headers, "content-type") === null) headerAppend(this.#headers, "content-type", "text/plain;charset=UTF-8");
      withBody(this, b);
    }
    get status() { return this.#status; }
    get statusText() { return this.#statusText; }
    get ok() { return this.#status >= 200 && this.#status <= 299; }
    get headers() { return this.#headers; }
    get url() { return this.#url; }
    get redirected() { return false; }
    get type() { return this.#type; }
    clone() {
      const body = cloneBody(this);
      return new Response(INTERNAL, { __proto__: null, status: this.#status, statusText: this.#statusText, headers: new Headers(this.#headers), url: this.#url, type: this.#type, body });
    }
  }
  // Response.error / redirect / json, as Deno's
  const REDIRECT_STATUS = [301, 302, 303, 307, 308];
  defineProperty(Response, "error", { value: function error() {
    return new Response(INTERNAL, { __proto__: null, status: 0, statusText: "", headers: new Headers(), url: "", type: "error", body: null });
  }, writable: true, configurable: true });
  defineProperty(Response, "redirect", { value: function redirect(url, status = 302) {
    const s = NumberCtor(status);
    let ok = false;
    for (let i = 0; i < REDIRECT_STATUS.length; i++) if (REDIRECT_STATUS[i] === s) ok = true;
    if (!ok) throw new RangeErrorCtor(`Invalid redirect status code: ${s}`);
    const location = new URL(url).href; // Deno parses it against its location: plain absolute URLs here
    const headers = new Headers();
    headerAppend(headers, "location", location);
    return new Response(INTERNAL, { __proto__: null, status: s, statusText: "", headers, url: "", type: "default", body: null });
  }, writable: true, configurable: true });
  defineProperty(Response, "json", { value: function json(data, init = undefined) {
    const text = jsonStringify(data);
    if (text === undefined) throw new TypeErrorCtor("Value is not JSON serializable");
    const headers = new Headers(init?.headers);
    if (headerGet(headers, "content-type") === null) headerAppend(headers, "content-type", "application/json");
    return new Response(text, { __proto__: null, status: init?.status, statusText: init?.statusText, headers });
  }, writable: true, configurable: true });
  for (const C of [Request, Response]) {
    const ds = Object.getOwnPropertyDescriptors(bodyMethods);
    for (const k of ownKeys(ds)) defineProperty(C.prototype, k, ds[k]);
  }
  for (const [C, tag] of [[Headers, "Headers"], [Request, "Request"], [Response, "Response"], [AbortSignal, "AbortSignal"], [AbortController, "AbortController"]]) {
    defineProperty(C.prototype, Symbol.toStringTag, { value: tag, configurable: true });
  }

  // -- fetch: the outer makes the request (Deno's own Request checks it) and sends back the reply
  const pending = new MapCtor(); // rid -> { resolve, reject, signal, onAbort }
  let nextRid = 1;
  function bodyMessage(b) {
    if (b === null) return null;
    return b.text !== null ? { __proto__: null, text: b.text } : { __proto__: null, b64: apply(toBase64, bodyBytes(b), []) };
  }
  function headerPairs(h) {
    const src = sortedPairs(h), out = list();
    for (let i = 0; i < src.length; i++) { const p = list(); add(p, src[i][0]); add(p, src[i][1]); add(out, p); }
    return out;
  }
  function fetch(input, init = undefined) {
    return new PromiseCtor((resolve, reject) => {
      const request = new Request(input, init);
      const parts = requestParts(request);
      const signal = parts.signal;
      if (signalState(signal).aborted) throw signalState(signal).reason;
      const body = consume(request);
      const rid = nextRid++;
      const onAbort = () => {
        if (apply(mapDelete, pending, [rid])) reject(signalState(signal).reason);
      };
      listen(signal, onAbort);
      apply(mapSet, pending, [rid, { __proto__: null, resolve, reject, signal, onAbort }]);
      queue({ __proto__: null, t: "fetch", rid, url: parts.url, method: parts.method, headers: headerPairs(parts.headers), body: bodyMessage(body) });
    });
  }
  function replyError(r) {
    const name = StringCtor(own(r, "name") ?? "TypeError"), message = StringCtor(own(r, "message") ?? "");
    if (name === "TypeError") return new TypeErrorCtor(message);
    const e = new ErrorCtor(message);
    defineProperty(e, "name", { value: name, writable: true, configurable: true });
    return e;
  }
  function settleFetch(msg) {
    const rid = own(msg, "rid");
    const p = apply(mapGet, pending, [rid]);
    if (p === undefined) return;
    apply(mapDelete, pending, [rid]);
    unlisten(p.signal, p.onAbort);
    const rejection = own(msg, "reject");
    if (rejection !== undefined && rejection !== null) {
      p.reject(replyError(rejection));
      return;
    }
    const headers = new Headers();
    const pairs = own(msg, "headers");
    for (let i = 0; isArray(pairs) && i < pairs.length; i++) {
      try { headerAppend(headers, own(pairs[i], 0), own(pairs[i], 1)); } catch { /* the outer sends valid ones */ }
    }
    const str = (k) => { const v = own(msg, k); return typeof v === "string" ? v : ""; };
    const status = own(msg, "status");
    const body = own(msg, "nullBody") === true ? null : { __proto__: null, text: str("text"), bytes: null, b64: str("b64") };
    p.resolve(new Response(INTERNAL, { __proto__: null, status: typeof status === "number" ? status : 0, statusText: str("statusText"), headers, url: str("url"), type: "default", body }));
  }

  // -- install the globals
  const put = (name, value, enumerable) => defineProperty(G, name, { value, writable: true, enumerable, configurable: true });
  put("console", sandboxConsole, false);
  for (const name of ["setTimeout", "clearTimeout", "setInterval", "clearInterval"]) put(name, timerFunctions[name], true);
  put("fetch", fetch, true);
  for (const C of [Request, Response, Headers, AbortController, AbortSignal]) put(C.name, C, false);

  // -- globals a Worker has and this realm lacks: reading one hands the job back to a Worker
  let workerOnly = [];
  try { workerOnly = jsonParse(StringCtor(workerOnlyJson)); } catch { /* none */ }
  const traps = new MapCtor(); // name -> its trap getter (to tell an untouched trap)
  const trapNames = list();
  const notHere = (name) => {
    queue({ __proto__: null, t: "worker_only", name });
    return new ErrorCtor(`${name} is not available here`);
  };
  // -- computed here: btoa/atob, and a URL for the libraries. Each gives exactly what a Worker's
  // gives, or hands the job to a Worker (whose real one also throws its own exact errors).
  const B64_WS = /[\t\n\f\r ]/g, strReplace = String.prototype.replace;
  function btoa(data) {
    if (arguments.length === 0) throw notHere("btoa");
    const s = StringCtor(data);
    const bytes = new Uint8ArrayCtor(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = apply(charCodeAt, s, [i]);
      if (c > 0xff) throw notHere("btoa"); // a Worker throws InvalidCharacterError
      bytes[i] = c;
    }
    return apply(toBase64, bytes, []);
  }
  function atob(data) {
    if (arguments.length === 0) throw notHere("atob");
    // WHATWG forgiving-base64: ASCII whitespace ignored, padding optional; anything it refuses
    // (a Worker throws InvalidCharacterError) goes to a Worker.
    let s = apply(strReplace, StringCtor(data), [B64_WS, ""]);
    if (s.length % 4 === 0) s = apply(strReplace, s, [/={1,2}$/, ""]);
    if (s.length % 4 === 1 || !test(/^[A-Za-z0-9+/]*$/, s)) throw notHere("atob");
    let bytes;
    try {
      bytes = apply(fromBase64, Uint8ArrayCtor, [s, { __proto__: null, lastChunkHandling: "loose" }]);
    } catch {
      throw notHere("atob");
    }
    let out = "";
    for (let i = 0; i < bytes.length; i++) out += fromCharCode(bytes[i]);
    return out;
  }
  // axios makes `new URL(url, origin)` of a URL with a port or credentials in it, to take the
  // credentials out. This URL handles the plain absolute http(s) URL exactly as WHATWG parses it
  // (scheme and host lowercased, the default port dropped, an empty path "/"); any other input
  // (relative, non-ASCII, dot segments, characters WHATWG would percent-encode, IPv6, numeric
  // hosts it would rewrite) hands the job to a Worker. For the libraries only: a job that names
  // URL itself runs in a Worker.
  const URL_RE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(?:([A-Za-z0-9._~!$&'()*+,%-]*)(?::([A-Za-z0-9._~!$&'()*+,%-]*))?@)?([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?(\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?[A-Za-z0-9._~!$&()*+,;=:@%/?-]+)?(#[A-Za-z0-9._~!$&'()*+,;=:@%/?-]+)?$/;
  const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;
  // labels of letters, digits and hyphens; no empty label, no punycode (xn--), and a last label
  // that is not a number (WHATWG would parse the host as IPv4 then)
  const DOMAIN = /^(?!.*(^|\.)xn--)[a-z0-9-]+(\.[a-z0-9-]+)*$/;
  const NUMERIC_LAST = /(^|\.)(0x[0-9a-f]*|[0-9]+)$/;
  const BAD_PATH = /\/(\.|%2e){1,2}(\/|$)|%(?![0-9A-Fa-f]{2})/i; // dot segments, bad escapes
  const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
  const DEFAULT_PORT = { __proto__: null, "http:": "80", "https:": "443" };
  const urlState = new WeakMapCtor();
  const urlOf = (u) => { const st = apply(weakGet, urlState, [u]); if (st === undefined) throw notHere("URL"); return st; };
  const urlHref = (st) => `${st.protocol}//${st.username || st.password ? `${st.username}${st.password ? ":" + st.password : ""}@` : ""}${st.hostname}${st.port ? ":" + st.port : ""}${st.pathname}${st.search}${st.hash}`;
  class URL {
    constructor(input, base = undefined) {
      void base; // an absolute URL ignores its base; a relative one goes to a Worker
      const m = apply(regexpExec, URL_RE, [StringCtor(input)]);
      if (m === null) throw notHere("URL");
      const protocol = apply(toLowerCase, m[1], []) + ":";
      const hostname = apply(toLowerCase, m[4], []);
      const [username = "", password = "", port = "", path = "", search = "", hash = ""] = [m[2], m[3], m[5], m[6], m[7], m[8]];
      const hostOk = test(IPV4, hostname) || (test(DOMAIN, hostname) && !test(NUMERIC_LAST, hostname));
      if (DEFAULT_PORT[protocol] === undefined || !hostOk || test(BAD_PATH, path)
        || test(BAD_ESCAPE, search + hash + username + password) || (port !== "" && NumberCtor(port) > 65535)) {
        throw notHere("URL");
      }
      const portText = port === "" ? "" : StringCtor(NumberCtor(port));
      apply(weakSet, urlState, [this, {
        __proto__: null, protocol, username, password, hostname,
        port: portText === DEFAULT_PORT[protocol] ? "" : portText, pathname: path || "/", search, hash,
      }]);
    }
    get href() { return urlHref(urlOf(this)); }
    get protocol() { return urlOf(this).protocol; }
    get username() { return urlOf(this).username; }
    set username(v) { if (StringCtor(v) !== "") throw notHere("URL"); urlOf(this).username = ""; }
    get password() { return urlOf(this).password; }
    set password(v) { if (StringCtor(v) !== "") throw notHere("URL"); urlOf(this).password = ""; }
    get hostname() { return urlOf(this).hostname; }
    get port() { return urlOf(this).port; }
    get host() { const st = urlOf(this); return st.hostname + (st.port ? ":" + st.port : ""); }
    get origin() { const st = urlOf(this); return `${st.protocol}//${st.hostname}${st.port ? ":" + st.port : ""}`; }
    get pathname() { return urlOf(this).pathname; }
    get search() { return urlOf(this).search; }
    get hash() { return urlOf(this).hash; }
    toString() { return urlHref(urlOf(this)); }
    toJSON() { return urlHref(urlOf(this)); }
  }
  put("btoa", btoa, true);
  put("atob", atob, true);
  // An error thrown in a microtask callback ends a Worker's job ("Uncaught ..."); V8 would only
  // report it to the outer realm's isolate, which does not tell the job: so it is caught here.
  put("queueMicrotask", function queueMicrotask(callback) {
    if (typeof callback !== "function") throw notHere("queueMicrotask"); // a Worker throws its own TypeError
    nativeQueueMicrotask(() => {
      try {
        apply(callback, undefined, []);
      } catch (err) {
        reportUncaught(err);
      }
    });
  }, true);
  const trapOn = (target, key, name) => defineProperty(target, key, {
    get() { throw notHere(name); },
    set(value) { defineProperty(target, key, { value, writable: true, enumerable: false, configurable: true }); },
    enumerable: false,
    configurable: true,
  });
  trapOn(Atomics, "waitAsync", "Atomics.waitAsync");
  trapOn(G, "FinalizationRegistry", "FinalizationRegistry");
  trapOn(G, "WebAssembly", "WebAssembly");

  for (let i = 0; isArray(workerOnly) && i < workerOnly.length; i++) {
    const name = workerOnly[i];
    if (typeof name !== "string" || reflectHas(G, name)) continue;
    const get = function () { throw notHere(name); };
    const set = function (value) { put(name, value, true); };
    defineProperty(G, name, { get, set, enumerable: false, configurable: true });
    apply(mapSet, traps, [name, get]);
    add(trapNames, name);
  }
  const untouched = (name) => { const g = apply(mapGet, traps, [name]); return g !== undefined && getterOf(getDesc(G, name)) === g; };

  // The libraries feature-detect many of these names (`typeof FormData`, `root.Buffer`,
  // `globalThis.ReadableStream`): that must not hand every axios job back to a Worker. So a
  // library evaluates in a scope where each untouched trapped name is a parameter: undefined for
  // names the libraries only detect, the realm's global (through a view that hides the traps) for
  // the global's own names, and for the rest (URL, btoa, ...) a value whose every use reports the
  // name, so a library that really needs one still sends the job to a Worker.
  const DETECTED = ["Blob", "FormData", "URLSearchParams", "ReadableStream", "TextEncoder", "XMLHttpRequest",
    "WorkerGlobalScope", "document", "navigator", "performance", "process", "setImmediate", "clearImmediate",
    "postMessage", "addEventListener", "removeEventListener", "Buffer", "location", "importScripts", "File", "FileList"];
  const GLOBAL_NAMES = ["self", "global", "window", "globalThis"];
  const RESERVED = /^(?:break|case|catch|class|const|continue|debugger|default|delete|do|else|enum|export|extends|false|finally|for|function|if|import|in|instanceof|new|null|return|super|switch|this|throw|true|try|typeof|var|void|while|with|yield|let|static|implements|interface|package|private|protected|public|await|arguments|eval|undefined|NaN|Infinity)$/;
  const poisons = new MapCtor();
  const inList = (a, s) => { for (let i = 0; i < a.length; i++) if (a[i] === s) return true; return false; };
  function libraryValue(name) {
    if (name === "URL") return URL;
    if (inList(GLOBAL_NAMES, name)) return view;
    if (inList(DETECTED, name)) return undefined;
    let p = apply(mapGet, poisons, [name]);
    if (p === undefined) {
      const fail = () => { throw notHere(name); };
      const handler = { __proto__: null, get: fail, set: fail, has: fail, apply: fail, construct: fail, ownKeys: fail,
        getOwnPropertyDescriptor: fail, defineProperty: fail, deleteProperty: fail, getPrototypeOf: fail,
        setPrototypeOf: fail, isExtensible: fail, preventExtensions: fail };
      p = new ProxyCtor(function () {}, handler);
      apply(mapSet, poisons, [name, p]);
    }
    return p;
  }
  const view = new ProxyCtor(G, {
    __proto__: null,
    get: (t, k) => (typeof k === "string" && untouched(k) ? libraryValue(k) : reflectGet(t, k, t)),
    has: (t, k) => (typeof k === "string" && untouched(k) && inList(DETECTED, k) ? false : reflectHas(t, k)),
    set: (t, k, v) => reflectSet(t, k, v, t),
  });
  function evaluateLibrary(src) {
    const params = list(), values = list();
    add(params, "globalThis");
    add(values, view);
    for (let i = 0; i < trapNames.length; i++) {
      const name = trapNames[i];
      if (!test(IDENT, name) || test(RESERVED, name)) continue;
      add(params, name);
      add(values, untouched(name) ? libraryValue(name) : G[name]);
    }
    const make = indirectEval(`(function(${apply(arrayJoin, params, [","])}){return(${src}\n)})`);
    return apply(make, undefined, values);
  }

  // A global that evaluates its library on first read and then is a plain data property
  // (worker.js lazyGlobal): lodash reads `root._` while it evaluates, which sees undefined.
  function lazyGlobal(name, src) {
    let loading = false;
    defineProperty(G, name, {
      configurable: true,
      enumerable: true,
      get() {
        if (loading) return undefined;
        loading = true;
        try {
          const value = evaluateLibrary(src);
          put(name, value, true);
          return value;
        } finally {
          loading = false;
        }
      },
      set(value) { put(name, value, true); },
    });
  }
  lazyGlobal("axios", StringCtor(axiosSrc)); // after fetch/Request/Response: axios captures them
  lazyGlobal("moment", StringCtor(momentSrc));
  lazyGlobal("_", StringCtor(lodashSrc));

  // -- the job (worker.js runJob, without its ES-module fallback: the outer never sends one)
  // Each ends in exactly one {"t":"done"} with worker.js's fields: ok/json, or ok:false/error/detail(/layer).
  const failed = (error, detail, layer) => (layer ? { __proto__: null, t: "done", ok: false, error, detail, layer } : { __proto__: null, t: "done", ok: false, error, detail });
  async function runJob(code, entry, data, maxOutput) {
    if (typeof entry !== "string" || !test(IDENT, entry)) return failed("exception", "the entrypoint is not a JavaScript identifier");
    let fn;
    try {
      const factory = new AsyncFunction("module", "exports", `${code}\n;return (typeof ${entry} === "function") ? ${entry} : undefined;`);
      const module = { exports: {} };
      fn = await factory(module, module.exports);
      if (typeof fn !== "function") fn = module.exports?.[entry];
    } catch (err) {
      return failed("exception", describe(err));
    }
    if (typeof fn !== "function") return failed("exception", `no function named ${entry} is defined`);
    let value, json;
    try {
      value = await fn(jsonParse(data));
    } catch (err) {
      return failed("exception", describe(err));
    }
    try {
      json = value === undefined ? "null" : jsonStringify(value);
    } catch (err) {
      return failed("invalid_output", "the return value is not JSON-serializable: " + describe(err));
    }
    if (typeof json !== "string") return failed("invalid_output", `the return value (${typeof value}) is not JSON-serializable`);
    if (json.length > maxOutput) return failed("invalid_output", `the return value is larger than ${maxOutput} bytes`, "output-limit");
    return { __proto__: null, t: "done", ok: true, json };
  }

  let started = false;
  function start(jobJson) {
    if (started) return;
    const job = jsonParse(StringCtor(jobJson));
    started = true;
    const run = runJob(StringCtor(own(job, "code")), own(job, "entrypoint"), own(job, "data"), NumberCtor(own(job, "max_output_bytes")));
    apply(promiseThen, run, [queue, (err) => queue(failed("exception", describe(err)))]);
  }

  function deliver(msgJson) {
    const msg = jsonParse(StringCtor(msgJson));
    const t = own(msg, "t");
    if (t === "timer") fire(own(msg, "id"));
    else if (t === "fetch_result") settleFetch(msg);
  }

  function take() {
    const batch = outbox;
    outbox = list();
    const s = jsonStringify(batch);
    return typeof s === "string" ? s : "[]";
  }

  // The only function the outer calls. Primitives in, primitives out (and the doorbell's buffer,
  // which this realm made), never a throw.
  return function control(op, arg) {
    try {
      switch (op) {
        case "sab": return sab;
        case "ring": return ring;
        case "start": start(arg); return undefined;
        case "take": return take();
        case "deliver": deliver(arg); return undefined;
        case "describe": return describe(arg);
        case "uncaught": return jsonStringify(uncaughtShape(arg));
        default: return undefined;
      }
    } catch {
      return op === "take" ? "[]" : op === "describe" ? "an unprintable value was thrown" : undefined;
    }
  };
});
