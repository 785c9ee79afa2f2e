// Dataset upload page: drag and drop, column suggestions, an upload bar that follows the
// bytes sent (xhr.upload.onprogress), then a processing bar that polls the dataset.
"use strict";

function llmwebDatasetUpload(form) {
  const $ = (id) => document.getElementById(id);
  const input = form.querySelector("input[type=file]");
  const zone = $("dropzone");
  const canonical = JSON.parse($("canonical-columns").textContent);
  const limit = Number(form.dataset.limit);
  const HEAD = 1 << 20;
  const INSPECT_WHOLE_MAX = 64 << 20;
  let inspected = null;
  // Why this file cannot be uploaded as it is (binary, unreadable, too few columns), or "".
  let refused = "";
  const button = $("upload-button");

  const mb = (n) => (n / (1 << 20)).toFixed(n < 10 << 20 ? 2 : 1) + " MB";
  const fail = (msg) => { $("form-error").textContent = msg; };

  // --- drag and drop -----------------------------------------------------------------
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => {
    e.preventDefault(); zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, (e) => {
    e.preventDefault(); zone.classList.remove("over");
  }));
  zone.addEventListener("drop", (e) => {
    if (!e.dataTransfer.files.length) return;
    const dt = new DataTransfer();
    dt.items.add(e.dataTransfer.files[0]);
    input.files = dt.files;
    input.dispatchEvent(new Event("change"));
  });

  // --- column suggestions --------------------------------------------------------------
  function drawMapping() {
    const box = $("mapping-fields");
    box.innerHTML = "";
    const schema = form.elements.schema.value;
    const columns = inspected ? inspected.columns : [];
    const suggested = inspected ? (inspected.suggested_mapping[schema] || {}) : {};
    for (const canon of canonical[schema] || []) {
      const label = document.createElement("label");
      label.textContent = canon + " ← ";
      const select = document.createElement("select");
      select.name = "map_" + canon;
      select.dataset.canon = canon;
      select.add(new Option("suggest from the file", ""));
      for (const c of columns) select.add(new Option(c, c, false, suggested[canon] === c));
      label.appendChild(select);
      box.appendChild(label);
    }
    $("mapping-help").textContent = inspected
      ? `Detected ${inspected.format}` + (inspected.format === "csv" && inspected.delimiter && inspected.delimiter !== "comma" ? ` (${DELIM_NAMES[inspected.delimiter]}-separated)` : "") +
        (inspected.sniffed ? " from the content" : "") +
        (inspected.encoding ? `, ${inspected.encoding}` : "") +
        (inspected.has_header === false ? ", no header row (columns are numbered)" : "") +
        (inspected.member ? `, inside the zip: ${inspected.member}` : "") + ". Change the columns if the suggestion is wrong."
      : "Choose a file to see its columns. Columns you leave on \"suggest\" are picked from the file.";
  }

  const DELIM_NAMES = {tab: "tab", comma: "comma", semicolon: "semicolon", pipe: "|"};

  // Never send what the preview already shows cannot work: the server would only refuse it.
  function checkFits() {
    const schema = form.elements.schema.value;
    const wanted = canonical[schema] || [];
    let why = refused;
    if (!why && inspected && inspected.columns.length < wanted.length) {
      const how = inspected.delimiter ? `${DELIM_NAMES[inspected.delimiter]}-separated` : inspected.format;
      why = `The file reads as ${how} with ${inspected.columns.length} column` +
        `${inspected.columns.length === 1 ? "" : "s"}, but ${schema} needs ${wanted.length} ` +
        `(${wanted.join(", ")}). Choose the file's delimiter or format above, or another schema.`;
    }
    fail(why);
    button.disabled = Boolean(why);
    button.dataset.refused = why ? "true" : "false";
    return !why;
  }

  function drawSample() {
    const table = $("sample-table");
    table.innerHTML = "";
    if (!inspected || !inspected.sample.length) { $("sample").hidden = true; return; }
    const head = table.createTHead().insertRow();
    inspected.columns.forEach((c) => { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); });
    const body = table.createTBody();
    for (const row of inspected.sample.slice(0, 5)) {
      const tr = body.insertRow();
      inspected.columns.forEach((c) => { tr.insertCell().textContent = row[c] == null ? "" : String(row[c]); });
    }
    $("sample").hidden = false;
  }

  async function inspect(file) {
    inspected = null; refused = "";
    drawMapping(); drawSample(); checkFits();
    const ext = file.name.split(".").pop().toLowerCase();
    const whole = ext === "zip" || ext === "parquet";
    if (whole && file.size > INSPECT_WHOLE_MAX) {
      $("file-facts").textContent += " · too large to preview; columns will be detected after the upload.";
      return;
    }
    const data = new FormData();
    const part = whole ? file : file.slice(0, HEAD);
    data.append("file", part, file.name);
    data.append("partial", !whole && file.size > HEAD ? "true" : "false");
    for (const f of ["encoding", "format", "delimiter", "has_header", "schema"]) data.append(f, form.elements[f].value);
    const r = await fetch("/api/v1/datasets/inspect/", {
      method: "POST", body: data, headers: {"X-CSRFToken": llmweb.csrf(), Accept: "application/json"},
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const detail = body.detail || `could not be read (HTTP ${r.status})`;
      $("file-facts").textContent = `${file.name} · ${mb(file.size)} · ${detail}`;
      // A preview that failed for its own reasons (time, memory) does not condemn the file.
      if (r.status === 400 && body.code !== "inspect_failed") refused = detail;
      checkFits();
      return;
    }
    inspected = body;
    drawMapping(); drawSample(); checkFits();
  }

  input.addEventListener("change", () => {
    fail("");
    const file = input.files[0];
    if (!file) return;
    $("file-facts").textContent = `${file.name} · ${mb(file.size)}`;
    if (file.size > limit) { fail(`${file.name} is ${mb(file.size)}; the limit is ${mb(limit)}.`); return; }
    if (!form.elements.name.value) form.elements.name.value = file.name.replace(/\.[^.]+$/, "");
    reinspect();
  });
  function reinspect() {
    const file = input.files[0];
    if (!file) return;
    $("file-facts").textContent = `${file.name} · ${mb(file.size)}`;
    inspect(file).catch((e) => { $("file-facts").textContent += " · preview failed: " + e; });
  }
  for (const f of ["encoding", "format", "delimiter", "has_header"]) form.elements[f].addEventListener("change", reinspect);
  // A language-model dataset reads a .txt as plain text, so that switch re-reads the file.
  const isLm = () => ["causal-lm", "masked-lm"].includes(form.elements.schema.value);
  let wasLm = isLm();
  form.elements.schema.addEventListener("change", () => {
    if (isLm() !== wasLm) { wasLm = isLm(); reinspect(); return; }
    drawMapping(); checkFits();
  });
  drawMapping();

  // --- upload, then processing ---------------------------------------------------------
  function setBar(id, pct) {
    const bar = $(id);
    bar.style.width = pct + "%";
    bar.dataset.pct = pct;
  }

  function poll(url, page) {
    const tick = async () => {
      const r = await fetch(url, {headers: {Accept: "application/json"}});
      if (r.ok) {
        const d = await r.json();
        const pct = d.status === "ready" ? 100 : Math.round(100 * d.progress);
        setBar("process-bar", pct);
        $("process-status").textContent = `${d.status}: ${d.progress_message || ""} (${pct}%)`;
        if (d.status === "ready" || d.status === "failed") {
          setTimeout(() => { location.href = page; }, 400);
          return;
        }
      }
      setTimeout(tick, 1000);
    };
    tick();
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    fail("");
    const file = input.files[0];
    if (!file) { fail("Choose a file first."); return; }
    if (!checkFits()) return;
    const data = new FormData();
    data.append("file", file);
    for (const f of ["name", "description", "schema", "encoding", "split_ratios", "seed", "txt_mode",
                     "format", "delimiter", "has_header"]) {
      data.append(f, form.elements[f].value);
    }
    data.append("stratify", form.elements.stratify.checked ? "true" : "false");
    data.append("team", form.dataset.team);
    const mapping = {};
    form.querySelectorAll("#mapping-fields select").forEach((s) => { if (s.value) mapping[s.dataset.canon] = s.value; });
    if (Object.keys(mapping).length) data.append("mapping", JSON.stringify(mapping));

    button.disabled = true;
    $("upload-stage").hidden = false;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/datasets/");
    xhr.setRequestHeader("X-CSRFToken", llmweb.csrf());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((100 * e.loaded) / e.total);
      setBar("upload-bar", pct);
      $("upload-status").textContent = `Uploading… ${mb(e.loaded)} of ${mb(e.total)} (${pct}%)`;
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 201) {
        setBar("upload-bar", 100);
        $("upload-status").textContent = `Uploaded ${mb(file.size)} (100%).`;
        $("process-stage").hidden = false;
        $("process-status").textContent = "Uploaded; asking the queue for its place…";
        poll(body.urls.self, body.urls.page);
      } else {
        fail(body.detail || `Upload failed (HTTP ${xhr.status}).`);
        button.disabled = false;
      }
    };
    xhr.onerror = () => { fail("The upload was interrupted; nothing was kept. Try again."); button.disabled = false; };
    xhr.send(data);
  });
}
