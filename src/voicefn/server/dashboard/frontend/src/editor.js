// The dashboard's JSON editor: CodeMirror 6 with JSON highlighting, and validation problems
// (JSON paths such as $.value.param.order_id) marked at their place in the text.
//
//   const editor = VoicefnEditor.create(parent, {
//     doc, label,                          // the text, and the editor's accessible name
//     validate: async (value) => problems, // [{severity, path, message, fix, found}]
//     onProblems: (problems) => {},        // each with from/to (null when not in the text)
//     onChange: (text) => {},
//   });
//   editor.text(); editor.setText(text); editor.select(from, to); editor.relint();
//
// Tab moves the focus out of the editor (keyboard users are never trapped).

import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { json, jsonParseLinter } from "@codemirror/lang-json";
import {
  bracketMatching,
  defaultHighlightStyle,
  ensureSyntaxTree,
  syntaxHighlighting,
  syntaxTree,
} from "@codemirror/language";
import { forceLinting, lintGutter, lintKeymap, linter } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from "@codemirror/view";

/** "$.a.b[0]['odd key']" -> ["a", "b", 0, "odd key"]; null when it is not a JSON path. */
export function parsePath(path) {
  if (typeof path !== "string" || !path.startsWith("$")) return null;
  const out = [];
  let i = 1;
  while (i < path.length) {
    if (path[i] === ".") {
      const m = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(path.slice(i + 1));
      if (!m) return null;
      out.push(m[0]);
      i += 1 + m[0].length;
    } else if (path[i] === "[") {
      const rest = path.slice(i + 1);
      const index = /^(\d+)\]/.exec(rest);
      if (index) {
        out.push(Number(index[1]));
        i += 1 + index[0].length;
        continue;
      }
      const quoted = /^("(?:[^"\\]|\\.)*")\]/.exec(rest);
      if (!quoted) return null;
      out.push(JSON.parse(quoted[1]));
      i += 1 + quoted[0].length;
    } else {
      return null;
    }
  }
  return out;
}

function valueOf(node) {
  // The value node of a Property (or the node itself elsewhere).
  if (node.name !== "Property") return node;
  let child = node.lastChild;
  while (child && (child.name === ":" || child.name === "⚠")) child = child.prevSibling;
  return child;
}

function children(node, keep) {
  const out = [];
  for (let c = node.firstChild; c; c = c.nextSibling) if (keep(c)) out.push(c);
  return out;
}

const PUNCTUATION = new Set(["{", "}", "[", "]", ",", ":", "⚠"]);

/** Where a JSON path points in the editor's text: {from, to, exact}; null when it cannot be
 * found at all. A path to something missing points at its closest existing parent. */
export function locate(state, path) {
  const parts = parsePath(path);
  if (parts === null) return null;
  const tree = ensureSyntaxTree(state, state.doc.length, 500) || syntaxTree(state);
  const top = tree.topNode.firstChild;
  if (!top) return null;
  const text = (n) => state.doc.sliceString(n.from, n.to);
  const mark = (holder, value) => {
    // Containers: the key (or the opening bracket); anything else: the value itself.
    if (value && (value.name === "Object" || value.name === "Array")) {
      const key = holder && holder.name === "Property" ? holder.firstChild : null;
      return key ? { from: key.from, to: key.to } : { from: value.from, to: value.from + 1 };
    }
    const target = value || holder;
    return { from: target.from, to: target.to };
  };
  let holder = null;
  let value = top;
  for (const part of parts) {
    let next = null;
    if (value.name === "Object" && typeof part === "string") {
      for (const prop of children(value, (c) => c.name === "Property")) {
        const key = prop.firstChild;
        let name = null;
        try {
          name = JSON.parse(text(key));
        } catch {
          name = null;
        }
        if (name === part) next = prop;
      }
    } else if (value.name === "Array" && typeof part === "number") {
      next = children(value, (c) => !PUNCTUATION.has(c.name))[part] || null;
    }
    if (next === null) return { ...mark(holder, value), exact: false };
    holder = next;
    value = valueOf(next);
    if (!value) return { from: next.from, to: next.to, exact: false };
  }
  return { ...mark(holder, value), exact: true };
}

const parseLinter = jsonParseLinter();

function diagnosticsFor(state, problems) {
  const out = [];
  const placed = problems.map((p) => {
    const at = locate(state, p.path);
    if (at) {
      const found = p.found === null || p.found === undefined ? "" : ` (found ${JSON.stringify(p.found)})`;
      out.push({
        from: at.from,
        to: at.to > at.from ? at.to : Math.min(at.from + 1, state.doc.length),
        severity: p.severity === "warning" ? "warning" : "error",
        source: p.path,
        message: `${p.message}${found}. Fix: ${p.fix}`,
      });
    }
    return { ...p, from: at ? at.from : null, to: at ? at.to : null };
  });
  return { diagnostics: out, placed };
}

export function create(parent, options) {
  const opts = options || {};
  let view = null;
  const report = (problems) => {
    if (opts.onProblems) opts.onProblems(problems);
  };
  const source = async (v) => {
    const text = v.state.doc.toString();
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      const syntax = parseLinter(v);
      report(
        syntax.map((d) => ({
          severity: "error",
          path: "$",
          message: `not valid JSON: ${d.message}`,
          fix: "correct the JSON syntax",
          from: d.from,
          to: d.to,
        })),
      );
      return syntax;
    }
    if (!opts.validate) return [];
    let problems;
    try {
      problems = await opts.validate(value);
    } catch (err) {
      report([{ severity: "error", path: "$", message: String(err.message || err), fix: "try again", from: null, to: null }]);
      return [];
    }
    if (v.state.doc.toString() !== text) return []; // typed on meanwhile: the next run decides
    const { diagnostics, placed } = diagnosticsFor(v.state, problems);
    report(placed);
    return diagnostics;
  };
  view = new EditorView({
    parent,
    state: EditorState.create({
      doc: opts.doc || "",
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        history(),
        drawSelection(),
        bracketMatching(),
        highlightActiveLine(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        json(),
        linter(source, { delay: 300 }),
        lintGutter(),
        keymap.of([...defaultKeymap, ...historyKeymap, ...lintKeymap]),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": opts.label || "JSON editor" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged && opts.onChange) opts.onChange(update.state.doc.toString());
        }),
      ],
    }),
  });
  return {
    view,
    text: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    select(from, to) {
      view.dispatch({ selection: { anchor: from, head: to }, scrollIntoView: true });
      view.focus();
    },
    locate: (path) => locate(view.state, path),
    relint: () => forceLinting(view),
  };
}
