// The test-call page: each request's answer is a stream of Server-Sent Events (call.py),
// shown in the transcript as it arrives: the agent's words, fillers, functions and results.
(() => {
  "use strict";
  const root = document.getElementById("call");
  if (!root) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const transcript = document.getElementById("transcript");
  const status = document.getElementById("call-status");
  const start = document.getElementById("start");
  const hangup = document.getElementById("hangup");
  const say = document.getElementById("say");
  const input = document.getElementById("say-text");
  const send = say.querySelector("button");
  let callId = null;
  let speaking = null; // the agent's line being streamed
  const functions = new Map(); // tool_call_id -> its transcript entry

  function line(kind, ...parts) {
    const item = document.createElement("li");
    item.className = kind;
    item.append(...parts);
    transcript.append(item);
    item.scrollIntoView({ block: "nearest" });
    return item;
  }

  function span(cls, text) {
    const node = document.createElement("span");
    node.className = cls;
    node.textContent = text;
    return node;
  }

  function busy(on, message) {
    input.disabled = on || !callId;
    send.disabled = on || !callId;
    hangup.disabled = !callId;
    start.disabled = on || Boolean(callId);
    if (message) status.textContent = message;
  }

  const handlers = {
    call(e) {
      callId = e.id;
      status.textContent = `Connected (${e.model}).`;
    },
    delta(e) {
      if (!speaking) speaking = line("agent", span("who", "Agent"), span("text", ""));
      speaking.querySelector(".text").textContent += e.text;
    },
    message(e) {
      if (!speaking) speaking = line("agent", span("who", "Agent"), span("text", ""));
      speaking.querySelector(".text").textContent = e.text;
      speaking = null;
    },
    filler(e) {
      speaking = null;
      line("filler", span("who", `Filler (${e.function})`), span("text", `“${e.text}”`));
    },
    started(e) {
      speaking = null;
      const args = typeof e.arguments === "string" ? e.arguments : JSON.stringify(e.arguments);
      const item = line("function running", span("who", "Function"), span("text", `${e.function}(${args}) running…`));
      functions.set(e.tool_call_id, item);
    },
    finished(e) {
      const item = functions.get(e.tool_call_id) || line("function", span("who", "Function"), span("text", ""));
      item.className = `function ${e.ok ? "ok" : "failed"}`;
      const outcome = e.ok ? "ok" : e.error || "failed";
      const code = e.status === null || e.status === undefined ? "" : ` ${e.status}`;
      item.querySelector(".text").textContent = `${e.function} finished: ${outcome}${code} · ${e.latency_ms} ms${e.deduplicated ? " (repeated call, not run again)" : ""}`;
      const result = document.createElement("pre");
      result.className = "mono";
      result.textContent = e.content;
      item.append(result);
      if (e.execution_id) {
        const link = document.createElement("a");
        link.href = `/executions/${e.execution_id}`;
        link.textContent = "execution";
        item.append(link);
      }
    },
    transfer(e) {
      line("event", span("text", `Transfer to ${e.number}${e.reason ? ` (${e.reason})` : ""} requested.`));
    },
    sms(e) {
      line("event", span("text", `SMS to ${e.to}: ${e.body}`));
    },
    ended(e) {
      if (e.message) line("agent", span("who", "Agent"), span("text", e.message));
      line("event", span("text", `The agent ended the call (${e.reason}).`));
    },
    error(e) {
      line("error", span("text", `${e.message}${e.detail ? `: ${e.detail}` : ""}`));
    },
    reported(e) {
      const link = document.createElement("a");
      link.href = e.url;
      link.textContent = "its transcript and post-call jobs";
      line("event stored", span("text", "The call was stored: "), link);
    },
    turn(e) {
      if (e.ttft_ms !== null && e.ttft_ms !== undefined) status.textContent = `First word after ${Math.round(e.ttft_ms)} ms.`;
    },
  };

  async function stream(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    if (!response.ok) {
      let message = `the server answered ${response.status}`;
      try {
        message = (await response.json()).message || message;
      } catch {}
      if (response.status === 401) window.location.href = `/login?next=${encodeURIComponent(window.location.pathname)}`;
      throw new Error(message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let ended = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        let payload = "";
        for (const row of block.split("\n")) {
          if (row.startsWith("event: ")) name = row.slice(7);
          else if (row.startsWith("data: ")) payload += row.slice(6);
        }
        const event = payload ? JSON.parse(payload) : {};
        if (name === "done") ended = event.ended;
        else if (handlers[name]) handlers[name](event);
      }
    }
    return ended;
  }

  function finish(message) {
    callId = null;
    speaking = null;
    busy(false, message);
  }

  start.addEventListener("click", async () => {
    transcript.replaceChildren();
    busy(true, "Calling…");
    try {
      await stream(`/agents/${root.dataset.agent}/call`);
      busy(false, callId ? "Your turn: type what the caller says." : status.textContent);
      input.focus();
    } catch (err) {
      finish(`Could not start: ${err.message}`);
    }
  });

  say.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || !callId) return;
    input.value = "";
    speaking = null;
    line("caller", span("who", "You"), span("text", text));
    busy(true, "The agent is answering…");
    try {
      const id = callId;
      const ended = await stream(`/calls/${id}/turn`, { text });
      if (ended) {
        await stream(`/calls/${id}/hangup`); // stored, its post-call work queued; then gone
        finish("The call has ended.");
        return;
      }
      busy(false, status.textContent === "The agent is answering…" ? "Your turn." : status.textContent);
      input.focus();
    } catch (err) {
      line("error", span("text", err.message));
      finish("The call has ended.");
    }
  });

  hangup.addEventListener("click", async () => {
    if (!callId) return;
    const id = callId;
    busy(true, "Hanging up…");
    try {
      await stream(`/calls/${id}/hangup`);
    } catch (err) {
      line("error", span("text", err.message));
    }
    line("event", span("text", "You hung up."));
    finish("Call ended.");
    start.focus();
  });
})();
