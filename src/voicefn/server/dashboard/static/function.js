// The function page: the JSON editor (editor.js), validation as you type, cURL import, save.
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("function-data").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const dialect = document.getElementById("dialect");
  const saveButton = document.getElementById("save");
  const saveStatus = document.getElementById("save-status");
  const problemsBox = document.getElementById("problems");
  const curl = document.getElementById("curl");
  const curlNotes = document.getElementById("curl-notes");
  const editorBox = document.getElementById("editor");
  let saved = data.text;
  let dirty = false;

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    if (response.status === 401) {
      window.location.href = `/login?next=${encodeURIComponent(window.location.pathname)}`;
      throw new Error("signed out");
    }
    let payload;
    try {
      payload = await response.json();
    } catch {
      payload = { ok: false, message: `the server answered ${response.status}` };
    }
    return { status: response.status, payload };
  }

  const writable = () => data.writable.includes(dialect.value) || dialect.value === "detect";
  const query = () => (dialect.value && dialect.value !== "detect" ? `?dialect=${encodeURIComponent(dialect.value)}` : "");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  }

  function describe(p) {
    const found = p.found === null || p.found === undefined ? "" : ` (found ${JSON.stringify(p.found)})`;
    return `${p.message}${found}.${p.fix ? ` Fix: ${p.fix}` : ""}`;
  }

  function showProblems(problems, heading) {
    problemsBox.replaceChildren();
    const errors = problems.filter((p) => p.severity !== "warning").length;
    const warnings = problems.length - errors;
    const summary = heading || (problems.length ? `${errors} error(s), ${warnings} warning(s)` : "No problems.");
    problemsBox.append(el("p", { class: errors ? "summary bad" : "summary good" }, summary));
    if (!problems.length) return;
    const list = el("ul", { class: "problem-list" });
    for (const p of problems) {
      const where =
        p.from === null || p.from === undefined
          ? el("code", {}, p.path)
          : el("button", { type: "button", class: "link", "aria-label": `Go to ${p.path}` }, p.path);
      if (where.tagName === "BUTTON") where.addEventListener("click", () => editor.select(p.from, p.to));
      list.append(el("li", { class: p.severity === "warning" ? "warning" : "error" }, el("span", { class: "sev" }, p.severity), " ", where, " ", describe(p)));
    }
    problemsBox.append(list);
  }

  async function validate(value) {
    if (!writable()) return [];
    const { payload } = await post(`/agents/${data.agent}/validate${query()}`, value);
    if (Array.isArray(payload.problems)) return payload.problems;
    throw new Error(payload.message || "the document could not be checked");
  }

  function setDirty(value) {
    dirty = value;
    saveStatus.textContent = dirty ? "Unsaved changes" : "";
  }

  const editor = window.VoicefnEditor.create(editorBox, {
    doc: data.text,
    label: editorBox.dataset.label,
    validate,
    onProblems: (problems) => showProblems(problems),
    onChange: (text) => setDirty(text !== saved),
  });

  window.addEventListener("beforeunload", (event) => {
    if (dirty) event.preventDefault();
  });

  dialect.addEventListener("change", () => {
    if (data.function) {
      if (dirty && !window.confirm("Discard the unsaved changes and show the saved function in this dialect?")) {
        dialect.value = data.dialect;
        return;
      }
      dirty = false;
      window.location.href = `${window.location.pathname}?dialect=${encodeURIComponent(dialect.value)}`;
      return;
    }
    saveButton.disabled = !writable();
    editor.relint();
  });

  saveButton.addEventListener("click", async () => {
    let document_;
    try {
      document_ = JSON.parse(editor.text());
    } catch (err) {
      saveStatus.textContent = "Not saved: the document is not valid JSON.";
      return;
    }
    saveButton.disabled = true;
    saveStatus.textContent = "Saving…";
    const url = data.function ? `/agents/${data.agent}/functions/${data.function}` : `/agents/${data.agent}/functions`;
    const body = { document: document_, dialect: dialect.value === "detect" ? null : dialect.value };
    try {
      const { payload } = await post(url, body);
      if (payload.ok && payload.url) {
        saved = editor.text();
        setDirty(false);
        window.location.href = payload.url;
        return;
      }
      const problems = (payload.problems || []).map((p) => {
        const at = editor.locate(p.path);
        return { ...p, from: at ? at.from : null, to: at ? at.to : null };
      });
      showProblems(problems, `Not saved: ${payload.message || "the server refused it"}`);
      saveStatus.textContent = "Not saved.";
    } catch (err) {
      saveStatus.textContent = `Not saved: ${err.message}`;
    } finally {
      saveButton.disabled = !writable();
    }
  });

  document.getElementById("generate").addEventListener("click", async () => {
    curlNotes.replaceChildren(el("p", { class: "muted" }, "Converting…"));
    const { payload } = await post(`/agents/${data.agent}/from-curl${query()}`, { curl: curl.value });
    curlNotes.replaceChildren();
    if (!payload.ok) {
      const items = (payload.problems || []).map((p) => el("li", {}, describe(p)));
      curlNotes.append(el("div", { class: "problems", role: "alert" }, el("p", {}, payload.message || "Not converted."), el("ul", {}, ...items)));
      return;
    }
    editor.setText(JSON.stringify(payload.function, null, 2));
    // Validation warnings are in the editor's problem list already.
    const notes = payload.warnings.filter((w) => !w.startsWith("validation warning")).map((w) => el("li", {}, w));
    curlNotes.append(
      el("p", { class: "notice" }, `Generated in ${payload.dialect}: review it in the editor, then ${data.function ? "save a new version" : "create the function"}.`),
    );
    if (notes.length) curlNotes.append(el("ul", { class: "notes" }, ...notes));
    editor.view.focus();
  });
})();
