// The playground page: one websocket (/ws/playground/), one request per model slot.
// Tokens arrive as events tagged with the request id; Stop asks the worker to stop (the
// server answers "done" with finish_reason "cancelled" and the count it really made).
"use strict";
(() => {
  const dataEl = document.getElementById("pg-models-data");
  if (!dataEl) return;
  const $ = (id) => document.getElementById(id);
  const models = JSON.parse(dataEl.textContent);
  const byId = Object.fromEntries(models.map((m) => [String(m.id), m]));
  const runs = {}; // request id -> {panel, sent, first, count, slot, mode, text}
  const chat = []; // the conversation, kept in the page: [{role, content}]
  let ws = null;
  let nextId = 1;
  let slots = [$("pg-model-0")];

  // ---- the socket ---------------------------------------------------------------
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws/playground/`);
    ws.onopen = () => { $("pg-conn").textContent = "connected"; };
    ws.onmessage = (m) => handle(JSON.parse(m.data));
    ws.onclose = (e) => {
      for (const id of Object.keys(runs)) finish(id, "failed", "The connection to the server was lost.");
      // 4401/4403/4404: refused (llmweb/websocket_guard.py); retrying would not help.
      if (e.code >= 4400 && e.code < 4500) {
        $("pg-conn").textContent = e.code === 4401 ? "not logged in: reload the page" : "refused by the server";
        return;
      }
      $("pg-conn").textContent = "connection lost; reconnecting…";
      setTimeout(connect, 1000);
    };
  }

  // ---- model slots and modes ------------------------------------------------------
  function modesOf(select) { return (byId[select.value] || { modes: [] }).modes; }

  function refreshModes() {
    const mode = $("pg-mode");
    const keep = mode.value;
    mode.innerHTML = "";
    for (const m of modesOf(slots[0])) mode.add(new Option(m, m, false, m === keep));
    applyMode();
  }

  function applyMode() {
    const chatMode = $("pg-mode").value === "chat";
    $("pg-chat-log").hidden = !chatMode;
    $("pg-export").hidden = !chatMode;
    $("pg-prompt").placeholder = {
      chat: "Your message…", classify: "Type a text: the bars follow as you type",
      attention: "Text to look at (up to 128 tokens): a heatmap per layer and head",
      seq2seq: "Text to transform (e.g. translate)…",
    }[$("pg-mode").value] || "Type a prompt…";
  }

  $("pg-compare").addEventListener("click", () => {
    if (slots.length >= 4) return;
    const s = slots[0].cloneNode(true);
    s.id = `pg-model-${slots.length}`;
    s.dataset.slot = String(slots.length);
    const others = models.filter((m) => !slots.some((x) => x.value === String(m.id)));
    if (others.length) s.value = String(others[0].id);
    slots[slots.length - 1].after(s);
    slots.push(s);
    if (slots.length >= 4) $("pg-compare").disabled = true;
  });
  slots[0].addEventListener("change", refreshModes);
  $("pg-mode").addEventListener("change", applyMode);

  // ---- parameters ----------------------------------------------------------------
  function params() {
    const out = {};
    for (const input of $("pg-params").querySelectorAll("input")) {
      const v = input.value.trim();
      if (v === "") continue;
      const t = input.dataset.type;
      out[input.name] = t === "int" ? parseInt(v, 10) : t === "float" ? parseFloat(v)
        : t === "list[str]" ? v.split(",").map((x) => x.trim()).filter(Boolean) : v;
    }
    return out;
  }

  // ---- sending --------------------------------------------------------------------
  function generate() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const mode = $("pg-mode").value;
    const prompt = $("pg-prompt").value;
    if (mode === "chat") {
      if (!prompt.trim()) return;
      chat.push({ role: "user", content: prompt });
      renderChat();
      $("pg-prompt").value = "";
    }
    const outputs = $("pg-outputs");
    outputs.innerHTML = "";
    outputs.style.gridTemplateColumns = `repeat(${slots.length}, minmax(0, 1fr))`;
    slots.forEach((select, slot) => {
      const model = byId[select.value];
      const panel = $("pg-output-tpl").content.firstElementChild.cloneNode(true);
      panel.querySelector(".pg-out-model").textContent = model.label;
      panel.dataset.slot = String(slot);
      outputs.append(panel);
      const id = `r${nextId++}`;
      const own = model.modes.includes(mode) ? mode : model.modes[0];
      runs[id] = { panel, sent: performance.now(), first: null, count: 0, slot, mode: own, text: "" };
      setState(id, "queued");
      const msg = { type: "generate", id, model: model.id, mode: own, params: params() };
      if (own === "chat") msg.messages = chat.slice();
      else msg.prompt = prompt;
      ws.send(JSON.stringify(msg));
    });
    $("pg-stop").disabled = false;
  }

  function setState(id, state) {
    const badge = runs[id].panel.querySelector(".pg-out-state");
    badge.textContent = state;
    badge.className = `badge pg-out-state ${state.split(" ")[0]}`;
    runs[id].panel.dataset.state = state.split(" ")[0];
  }

  // ---- receiving ------------------------------------------------------------------
  function handle(ev) {
    const run = runs[ev.id];
    if (!run) return;
    const p = run.panel;
    switch (ev.type) {
      case "queued": setState(ev.id, `queued #${ev.position || 1}`); break;
      case "started": setState(ev.id, "loading"); break;
      case "model": setState(ev.id, "running"); break;
      case "token": addToken(run, ev); break;
      case "text": p.querySelector(".pg-text").append(ev.text); run.text += ev.text; break;
      case "done": done(ev.id, ev); break;
      case "error": finish(ev.id, "failed", ev.message); break;
      default: break;
    }
  }

  function addToken(run, ev) {
    const now = performance.now();
    if (run.first === null) {
      run.first = now;
      run.panel.querySelector(".pg-ttft").textContent = `TTFT ${Math.round(now - run.sent)} ms`;
    }
    run.count += 1;
    run.text += ev.text;
    const span = document.createElement("span");
    span.className = "pg-tok";
    span.textContent = ev.text;
    const prob = Math.exp(ev.logprob);
    span.style.background = `hsla(${Math.round(120 * prob)}, 75%, 50%, .28)`;
    span.dataset.token = ev.token;
    span.dataset.logprob = ev.logprob.toFixed(3);
    span.dataset.top = JSON.stringify(ev.top_logprobs || []);
    run.panel.querySelector(".pg-text").append(span);
    run.panel.querySelector(".pg-count").textContent = `${run.count} tokens`;
    if (run.count > 1) {
      const tps = (run.count - 1) / ((now - run.first) / 1000);
      run.panel.querySelector(".pg-tps").textContent = `${tps.toFixed(1)} tok/s`;
    }
  }

  function done(id, ev) {
    const run = runs[id];
    if (ev.labels) bars(run.panel, ev.labels);
    if (ev.attributions) attributions(run.panel, ev.attributions);
    if (ev.attention) heatmap(run.panel, ev.attention);
    if (ev.tokens_per_second) {
      run.panel.querySelector(".pg-tps").textContent = `${ev.tokens_per_second.toFixed(1)} tok/s`;
    }
    if (ev.completion_tokens !== undefined) {
      run.panel.querySelector(".pg-count").textContent = `${ev.completion_tokens} tokens`;
    }
    if (run.mode === "chat" && run.slot === 0) {
      chat.push({ role: "assistant", content: ev.text });
      renderChat();
    }
    finish(id, ev.finish_reason === "cancelled" ? "cancelled" : "done");
  }

  function finish(id, state, error) {
    if (!runs[id]) return;
    setState(id, state);
    if (error) runs[id].panel.querySelector(".pg-error").textContent = error;
    delete runs[id];
    if (!Object.keys(runs).length) $("pg-stop").disabled = true;
  }

  function bars(panel, labels) {
    const box = panel.querySelector(".pg-bars");
    box.innerHTML = "";
    for (const row of labels) {
      const line = document.createElement("div");
      line.className = "pg-bar";
      const pct = (100 * row.probability).toFixed(1);
      line.innerHTML = '<span class="pg-bar-label"></span><span class="pg-bar-track"><span class="pg-bar-fill"></span></span><span class="pg-bar-pct"></span>';
      line.querySelector(".pg-bar-label").textContent = row.label;
      line.querySelector(".pg-bar-fill").style.width = `${pct}%`;
      line.querySelector(".pg-bar-pct").textContent = `${pct}%`;
      box.append(line);
    }
  }

  // Which tokens the classifier's decision drew on (attention rollout), as highlighted text.
  function attributions(panel, tokens) {
    const box = panel.querySelector(".pg-text");
    box.innerHTML = "";
    const top = Math.max(...tokens.map((t) => t.weight), 1e-9);
    for (const t of tokens) {
      const span = document.createElement("span");
      span.className = "pg-attr";
      span.textContent = t.token;
      span.title = `${(100 * t.weight).toFixed(1)}%`;
      span.style.background = `rgba(255, 140, 0, ${(0.6 * t.weight / top).toFixed(3)})`;
      box.append(span);
    }
  }

  // ---- attention heatmap: data is bytes (0..255) laid out (layer, head, query, key) ----
  function heatmap(panel, att) {
    const bytes = Uint8Array.from(atob(att.data), (c) => c.charCodeAt(0));
    const box = panel.querySelector(".pg-bars");
    box.innerHTML = "";
    const controls = document.createElement("div");
    controls.className = "pg-att-controls";
    const layer = document.createElement("select");
    const head = document.createElement("select");
    layer.className = "pg-att-layer";
    head.className = "pg-att-head";
    for (let l = 0; l < att.layers; l++) layer.add(new Option(`layer ${l}`, String(l)));
    for (let h = 0; h < att.heads; h++) head.add(new Option(`head ${h}`, String(h)));
    const info = document.createElement("span");
    info.className = "muted pg-att-info";
    controls.append(layer, head, info);
    const n = att.size;
    const cell = Math.max(2, Math.min(12, Math.floor(480 / n)));
    const canvas = document.createElement("canvas");
    canvas.className = "pg-att";
    canvas.width = canvas.height = n * cell;
    box.append(controls, canvas);
    const draw = () => {
      const ctx = canvas.getContext("2d");
      const base = (Number(layer.value) * att.heads + Number(head.value)) * n * n;
      for (let q = 0; q < n; q++) {
        for (let k = 0; k < n; k++) {
          const v = bytes[base + q * n + k];
          ctx.fillStyle = `rgb(${255 - v}, ${255 - Math.round(v * 0.6)}, 255)`;
          ctx.fillRect(k * cell, q * cell, cell, cell);
        }
      }
    };
    canvas.addEventListener("mousemove", (e) => {
      const r = canvas.getBoundingClientRect();
      const q = Math.floor((e.clientY - r.top) / cell);
      const k = Math.floor((e.clientX - r.left) / cell);
      if (q < 0 || k < 0 || q >= n || k >= n) return;
      const base = (Number(layer.value) * att.heads + Number(head.value)) * n * n;
      info.textContent = `${JSON.stringify(att.tokens[q])} → ${JSON.stringify(att.tokens[k])}: ${(bytes[base + q * n + k] / 255).toFixed(2)}`;
    });
    layer.addEventListener("change", draw);
    head.addEventListener("change", draw);
    draw();
  }

  function renderChat() {
    const log = $("pg-chat-log");
    log.innerHTML = "";
    for (const m of chat) {
      const div = document.createElement("div");
      div.className = `pg-msg ${m.role}`;
      div.textContent = m.content;
      log.append(div);
    }
  }

  // ---- hover: a token's alternatives ------------------------------------------------
  const tip = $("pg-tip");
  document.addEventListener("mouseover", (e) => {
    const tok = e.target.closest(".pg-tok");
    if (!tok) { tip.hidden = true; return; }
    const top = JSON.parse(tok.dataset.top);
    tip.innerHTML = "";
    const head = document.createElement("div");
    head.className = "pg-tip-head";
    head.textContent = `${JSON.stringify(tok.dataset.token)}  logprob ${tok.dataset.logprob}`;
    tip.append(head);
    for (const alt of top) {
      const row = document.createElement("div");
      row.className = "pg-tip-row";
      row.textContent = `${JSON.stringify(alt.token)}  ${alt.logprob.toFixed(3)}  (${(100 * Math.exp(alt.logprob)).toFixed(1)}%)`;
      tip.append(row);
    }
    const r = tok.getBoundingClientRect();
    tip.style.left = `${r.left + window.scrollX}px`;
    tip.style.top = `${r.bottom + window.scrollY + 4}px`;
    tip.hidden = false;
  });

  // ---- buttons -------------------------------------------------------------------------
  $("pg-generate").addEventListener("click", generate);
  $("pg-stop").addEventListener("click", () => ws && ws.send(JSON.stringify({ type: "stop" })));
  $("pg-clear").addEventListener("click", () => {
    chat.length = 0; renderChat(); $("pg-outputs").innerHTML = "";
  });
  $("pg-export").addEventListener("click", () => {
    const blob = new Blob([chat.map((m) => JSON.stringify(m)).join("\n") + "\n"], { type: "application/jsonl" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "chat.jsonl";
    a.click();
  });
  $("pg-prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) generate();
  });
  let debounce = null; // classify follows the text as it is typed
  $("pg-prompt").addEventListener("input", () => {
    if ($("pg-mode").value !== "classify") return;
    clearTimeout(debounce);
    debounce = setTimeout(generate, 300);
  });

  refreshModes();
  connect();
})();
