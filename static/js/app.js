// Small helpers shared by every page; pages add their own script blocks.
"use strict";
document.addEventListener("click", (ev) => {
  const btn = ev.target.closest("[data-copy]");
  if (!btn) return;
  const el = document.querySelector(btn.dataset.copy);
  if (el && navigator.clipboard) navigator.clipboard.writeText(el.textContent.trim());
  btn.textContent = "Copied";
});

window.llmweb = {
  csrf() {
    const m = document.cookie.match(/csrftoken=([^;]+)/);
    return m ? m[1] : "";
  },
  // A websocket that reconnects and resumes after the last sequence number it saw.
  stream(path, onEvent, opts = {}) {
    let last = opts.after || 0, closed = false, ws;
    const open = () => {
      const proto = location.protocol === "https:" ? "wss" : "ws";
      ws = new WebSocket(`${proto}://${location.host}${path}?after=${last}`);
      ws.onmessage = (m) => {
        const ev = JSON.parse(m.data);
        if (ev.seq) last = Math.max(last, ev.seq);
        onEvent(ev);
      };
      ws.onclose = () => { if (!closed) setTimeout(open, 1000); };
    };
    open();
    return { close() { closed = true; ws.close(); } };
  },
};
