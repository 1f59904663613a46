// stripe-xdm console: the actions and live parts of the server-rendered pages.
"use strict";

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.error || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function say(text, kind = "ok") {
  const m = $("#message");
  if (!m) return;
  m.textContent = text;
  m.className = `message ${kind}`;
}

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function cell(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") {
    const j = JSON.stringify(v);
    return `<pre title="${esc(j)}">${esc(j.length > 400 ? j.slice(0, 397) + "…" : j)}</pre>`;
  }
  const s = String(v);
  return esc(s.length > 120 ? s.slice(0, 117) + "…" : s);
}

function tableOf(columns, rows, id = "") {
  if (!rows.length) return `<p class="empty">No rows.</p>`;
  const head = columns.map((c) => `<th>${esc(c)}</th>`).join("");
  const body = rows.map((r) => `<tr>${columns.map((c) => `<td>${cell(r[c])}</td>`).join("")}</tr>`).join("");
  return `<table ${id ? `id="${id}"` : ""}><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function formObject(form) {
  const o = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "checkbox") o[el.name] = el.checked;
    else if (el.type === "radio") { if (el.checked) o[el.name] = el.value; }
    else o[el.name] = el.value;
  }
  return o;
}

// ------------------------------------------------------------------------------- accounts
function accountsPage() {
  const form = $("#add-account");
  if (!form) return;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    say("Testing the key…", "ok");
    try {
      const r = await api("POST", "/api/accounts", formObject(form));
      form.reset();
      say(`Account ${r.account.name} added (Stripe account ${r.stripe_account}).`);
      setTimeout(() => location.reload(), 600);
    } catch (err) { say(err.message, "error"); }
  });
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    const name = b.dataset.name;
    try {
      if (b.dataset.action === "test-account") {
        const r = await api("POST", `/api/accounts/${encodeURIComponent(name)}/test`);
        say(`Account ${name}: connection OK (Stripe account ${r.stripe_account}).`);
      } else if (b.dataset.action === "remove-account" && confirm(`Remove account ${name}?`)) {
        await api("DELETE", `/api/accounts/${encodeURIComponent(name)}`);
        location.reload();
      }
    } catch (err) { say(err.message, "error"); }
  });
}

// ------------------------------------------------------------------------------ dataflows
function dataflowsPage() {
  const table = $("#dataflows");
  const edit = $("#edit-dataflow");
  if (!edit) return;
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    const name = b.dataset.name;
    const path = `/api/dataflows/${encodeURIComponent(name)}`;
    try {
      switch (b.dataset.action) {
        case "run":
          await api("POST", `${path}/run`);
          location.href = `/monitoring?dataflow=${encodeURIComponent(name)}`;
          break;
        case "enable":
        case "disable":
          await api("POST", `${path}/${b.dataset.action}`);
          location.reload();
          break;
        case "delete":
          if (confirm(`Delete dataflow ${name}? Its runs' history goes with it; committed batches stay.`)) {
            await api("DELETE", path);
            location.reload();
          }
          break;
        case "edit":
          edit.hidden = false;
          $("#e-name").textContent = name;
          edit.elements.name.value = name;
          edit.elements.etag.value = b.dataset.etag;
          edit.elements.description.value = b.dataset.description;
          edit.elements.frequency.value = b.dataset.frequency;
          edit.elements.interval.value = b.dataset.interval;
          edit.elements.sql.value = "";
          break;
      }
    } catch (err) { say(err.message, "error"); }
  });
  edit.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = formObject(edit);
    const body = { etag: Number(f.etag), description: f.description, frequency: f.frequency };
    if (f.frequency !== "once" && f.interval) body.interval = Number(f.interval);
    if (f.sql.trim()) body.sql = f.sql;
    try {
      const r = await api("PATCH", `/api/dataflows/${encodeURIComponent(f.name)}`, body);
      say(`Dataflow ${r.name} updated (etag ${r.etag}).`);
      setTimeout(() => location.reload(), 600);
    } catch (err) {
      say(err.status === 412 ? `Conflict: ${err.message}` : err.message, "error");
    }
  });
  void table;
}

// ----------------------------------------------------------------------------- monitoring
function monitoringPage() {
  const live = $("#live");
  if (!live) return;
  const seen = new Map();
  const tick = async () => {
    try {
      const runs = await api("GET", "/api/live");
      let ended = false;
      const now = new Set(runs.map((r) => r.dataflow));
      for (const [flow, done] of seen) {
        // A run of another process leaves the list when it ends.
        if (done === false && !now.has(flow)) { ended = true; seen.delete(flow); }
      }
      for (const r of runs) {
        if (seen.get(r.dataflow) === false && r.done) ended = true;
        seen.set(r.dataflow, r.done);
      }
      const going = runs.filter((r) => !r.done);
      const last = runs.filter((r) => r.done);
      live.innerHTML = going.length
        ? going.map((r) => `<div class="item" data-dataflow="${esc(r.dataflow)}"><b>${esc(r.dataflow)}</b>: ${r.fetched} received, ${r.rejected} rejected, ${Math.round(r.rate)} records/s` +
            (r.as_of ? ` <span class="hint">(run ${r.run_id} of another process, as of its checkpoint at ${new Date(r.as_of * 1000).toISOString().slice(11, 19)} UTC)</span>` : `<div class="bar"><div style="width:${Math.round(r.fraction * 100)}%"></div></div>`) + `</div>`).join("")
        : `<p class="empty">No run in progress.</p>` + last.map((r) => `<p class="item done" data-dataflow="${esc(r.dataflow)}">Last run of <b>${esc(r.dataflow)}</b> from this console: ${esc(r.outcome)}</p>`).join("");
      if (ended) location.reload();
    } catch (err) { live.innerHTML = `<p class="error">${esc(err.message)}</p>`; }
  };
  tick();
  setInterval(tick, 1000);
}

// -------------------------------------------------------------------------- rejected rows
function rejectedPage() {
  const sql = $("#sql");
  if (!sql) return;
  sql.addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = $("#sql-result");
    try {
      const r = await api("POST", "/api/rejected/query", { dataflow: sql.dataset.dataflow, sql: sql.elements.sql.value });
      out.innerHTML = tableOf(r.columns, r.rows, "sql-table") + (r.truncated ? `<p class="hint">First ${r.rows.length} of ${r.total} rows.</p>` : "");
    } catch (err) { out.innerHTML = `<p class="error">${esc(err.message)}</p>`; }
  });
  const replay = $("#replay");
  replay.addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = $("#replay-result");
    out.innerHTML = `<p class="hint">Replaying…</p>`;
    try {
      const r = await api("POST", "/api/rejected/replay", { dataflow: replay.dataset.dataflow, sql: replay.elements.sql.value });
      const still = Object.entries(r.still_rejected).map(([c, n]) => `${esc(c)} ×${n}`).join(", ") || "none";
      out.innerHTML = `<p class="ok">${r.rejected_rows} rejected rows, ${r.already_replayed} already replayed, ${r.replayed} re-mapped, <b>${r.ingested}</b> now pass; still failing: ${still}.</p>` +
        (r.new_batch_dir ? `<p>New batch: <code>${esc(r.new_batch_dir)}</code></p>` : "");
    } catch (err) { out.innerHTML = `<p class="error">${esc(err.message)}</p>`; }
  });
}

// --------------------------------------------------------------------------------- wizard
function wizardPage() {
  const form = $("#wizard");
  if (!form) return;
  const steps = $$(".step", form);
  const marks = $$("#steps li");
  let current = 1;
  let mappingFor = null;
  const v = () => formObject(form);

  const datasetChoice = () => {
    const f = v();
    if (f.dataset_mode === "existing") return { dataset: f.dataset };
    return {
      new_dataset: {
        name: f.new_name.trim(), description: f.new_description, profile: f.profile,
        error_diagnostics: f.error_diagnostics,
        partial_ingestion_percent: f.partial ? Number(f.threshold) : null,
      },
    };
  };
  const schedule = () => {
    const f = v();
    // A one-time dataflow has neither an interval nor a backfill choice (Platform's rules,
    // which the API applies as the command line does).
    const s = { frequency: f.frequency };
    if (f.frequency !== "once") {
      s.interval = Number(f.interval);
      s.backfill = f.backfill;
    }
    if (f.start_time) s.start_time = f.start_time;
    return s;
  };

  async function loadPreview() {
    const f = v();
    const out = $("#w-preview");
    out.innerHTML = `<p class="hint">Loading the first page of ${esc(f.resource)}…</p>`;
    try {
      const p = await api("GET", `/api/preview?account=${encodeURIComponent(f.account)}&resource=${encodeURIComponent(f.resource)}&rows=10`);
      const cols = p.columns.slice(0, 8);
      out.innerHTML = `<p>${p.records} records on the first page (more: ${p.has_more}).</p>` + tableOf(cols, p.rows, "preview-table") +
        (p.extra_fields.length ? `<p class="hint">Beyond the decoded schema (kept in _raw): ${p.extra_fields.map(([f]) => esc(f)).join(", ")}</p>` : "");
    } catch (err) { out.innerHTML = `<p class="error">${esc(err.message)}</p>`; }
  }

  async function loadMapping() {
    const f = v();
    if (mappingFor === f.resource) return;
    const m = await api("GET", `/api/mapping/default?resource=${encodeURIComponent(f.resource)}`);
    $("#w-sql").value = m.sql;
    mappingFor = f.resource;
  }

  async function checkMapping() {
    const f = v();
    const out = $("#w-mapping-result");
    const r = await api("POST", "/api/mapping/check", { resource: f.resource, sql: f.sql, ...datasetChoice() });
    out.innerHTML = r.sound
      ? `<p class="ok" id="w-check-ok">The mapping fits the dataset's schema.</p>`
      : `<div class="error" id="w-check-errors"><p>${r.errors.length} error(s):</p><ul>${r.errors.map((e) => `<li>${esc(e)}</li>`).join("")}</ul></div>`;
    return r.sound;
  }

  async function previewMapping() {
    const f = v();
    const out = $("#w-mapping-result");
    try {
      const rows = await api("POST", "/api/mapping/preview", { account: f.account, resource: f.resource, sql: f.sql, rows: 5, ...datasetChoice() });
      out.innerHTML = tableOf(["object_id", "accepted", "issues", "mapped"], rows.map((r) => ({ ...r, issues: r.issues.map((i) => i.join(" ")).join("; ") })), "mapping-preview");
    } catch (err) { out.innerHTML = `<p class="error">${esc(err.message)}</p>`; }
  }

  function review() {
    const f = v();
    const d = datasetChoice();
    const alerts = ["run_start", "run_success", "run_failure"].filter((a) => f[a]).join(", ") || "none";
    const rows = [
      ["Account", f.account], ["Resource path", f.resource],
      ["Dataset", d.dataset ? `${d.dataset} (existing)` : `${d.new_dataset.name} (new${d.new_dataset.profile ? ", Profile" : ""}${d.new_dataset.partial_ingestion_percent != null ? `, partial ingestion ${d.new_dataset.partial_ingestion_percent}%` : ""})`],
      ["Dataflow name", f.name || `Stripe ${f.resource}`], ["Alerts", alerts],
      ["Mapping", mappingFor === f.resource ? "edited in step 5" : "built-in"],
      ["Frequency", f.frequency === "once" ? "once" : `every ${f.interval} ${f.frequency}`],
      ["Start time", f.start_time || "now"], ["Backfill", f.frequency === "once" ? "–" : String(f.backfill)],
    ];
    $("#w-review").innerHTML = rows.map(([k, val]) => `<dt>${esc(k)}</dt><dd>${esc(val)}</dd>`).join("");
  }

  function show(n) {
    current = n;
    steps.forEach((s) => (s.hidden = Number(s.dataset.step) !== n));
    marks.forEach((m, i) => { m.className = i + 1 === n ? "current" : i + 1 < n ? "done" : ""; });
    $("#w-back").disabled = n === 1;
    $("#w-next").hidden = n === steps.length;
    $("#w-finish").hidden = n !== steps.length;
  }

  // Leaving a step: its checks; false keeps the user on it.
  async function leave(n) {
    const f = v();
    if (n === 3) {
      if (f.dataset_mode !== "existing" && !f.new_name.trim()) { say("Give the new dataset a name.", "error"); return false; }
      if (f.partial && !(Number(f.threshold) > 0 && Number(f.threshold) <= 100)) {
        say("The error threshold is a percentage above 0 and at most 100.", "error"); return false;
      }
    }
    if (n === 5) return await checkMapping();
    if (n === 6) await api("POST", "/api/schedule/check", schedule());
    return true;
  }

  async function enter(n) {
    const f = v();
    if (n === 2) await loadPreview();
    if (n === 3 && !$("#w-new-name").value) $("#w-new-name").value = f.resource;
    if (n === 4 && !$("#w-name").value) $("#w-name").value = `Stripe ${f.resource}`;
    if (n === 5) await loadMapping();
    if (n === 7) review();
  }

  $("#w-next").addEventListener("click", async () => {
    say("");
    try {
      if (!(await leave(current))) return;
      show(current + 1);
      await enter(current);
    } catch (err) { say(err.message, "error"); }
  });
  $("#w-back").addEventListener("click", () => { say(""); show(current - 1); });
  $("#w-resource").addEventListener("change", loadPreview);
  $("#w-frequency").addEventListener("change", () => { $("#w-interval").disabled = v().frequency === "once"; });
  $("#w-interval").disabled = v().frequency === "once";
  $$("input[name=dataset_mode]").forEach((r) => r.addEventListener("change", () => {
    const existing = v().dataset_mode === "existing";
    $("#w-existing-dataset").hidden = !existing;
    $("#w-new-dataset").hidden = existing;
  }));
  $("#w-check").addEventListener("click", () => checkMapping().catch((err) => say(err.message, "error")));
  $("#w-map-preview").addEventListener("click", previewMapping);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = v();
    const body = {
      name: f.name, description: f.description, account: f.account, resource: f.resource,
      sql: mappingFor === f.resource ? f.sql : null, alert_webhook: f.alert_webhook,
      alerts: { run_start: f.run_start, run_success: f.run_success, run_failure: f.run_failure },
      ...schedule(), ...datasetChoice(),
    };
    try {
      const made = await api("POST", "/api/dataflows", body);
      const name = made[0].name;
      $("#message").innerHTML = `<span class="ok" id="w-created">Dataflow <b>${esc(name)}</b> created.</span> <button type="button" id="w-run" data-name="${esc(name)}">Run now</button> <a href="/dataflows">All dataflows</a>`;
      $("#message").className = "message";
      $("#w-finish").disabled = true;
      $("#w-run").addEventListener("click", async () => {
        try {
          await api("POST", `/api/dataflows/${encodeURIComponent(name)}/run`);
          location.href = `/monitoring?dataflow=${encodeURIComponent(name)}`;
        } catch (err) { say(err.message, "error"); }
      });
    } catch (err) { say(err.message, "error"); }
  });
  show(1);
}

document.addEventListener("DOMContentLoaded", () => {
  accountsPage();
  dataflowsPage();
  monitoringPage();
  rejectedPage();
  wizardPage();
});
