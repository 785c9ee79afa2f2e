// Small helpers shared by every page; pages add their own script blocks.
"use strict";
// Behaviour that used to be inline handlers, which the Content-Security-Policy forbids:
// <form data-confirm="question"> asks first; <form data-nosubmit> never submits (its
// inputs are read by the page's script); <select data-autosubmit> submits its form.
document.addEventListener("submit", (ev) => {
  if (ev.target.closest("form[data-nosubmit]")) {
    ev.preventDefault();
    return;
  }
  const form = ev.target.closest("form[data-confirm]");
  if (form && !confirm(form.dataset.confirm)) ev.preventDefault();
});
document.addEventListener("change", (ev) => {
  if (ev.target.matches("select[data-autosubmit]")) ev.target.form.submit();
});
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
  // Reconnects back off (1 s doubling to 30 s, with jitter; reset once a socket opened) and
  // stop for good on a denial: 4401 not logged in, 4403 origin refused, 4404 not found
  // (docs/ARCHITECTURE.md, "Websocket denials"). opts.onDenied(code) may tell the person.
  stream(path, onEvent, opts = {}) {
    const DENIED = [4401, 4403, 4404];
    let last = opts.after || 0, closed = false, ws, delay = 1000;
    const open = () => {
      const proto = location.protocol === "https:" ? "wss" : "ws";
      ws = new WebSocket(`${proto}://${location.host}${path}?after=${last}`);
      ws.onopen = () => { delay = 1000; };
      ws.onmessage = (m) => {
        const ev = JSON.parse(m.data);
        if (ev.seq) last = Math.max(last, ev.seq);
        onEvent(ev);
      };
      ws.onclose = (e) => {
        if (closed) return;
        if (DENIED.includes(e.code)) {
          closed = true;
          if (opts.onDenied) opts.onDenied(e.code);
          return;
        }
        setTimeout(open, delay * (0.75 + Math.random() / 2));
        delay = Math.min(30000, delay * 2);
      };
    };
    open();
    return { close() { closed = true; ws.close(); } };
  },
};
