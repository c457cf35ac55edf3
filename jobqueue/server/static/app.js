// jobqueue dashboard: plain JS over the API (/api/v1, docs/api.md); no build step.
// Live figures come from one Server-Sent Events stream (/api/v1/events). It is read with
// fetch, not EventSource, because EventSource cannot send the Authorization header and the
// token must not go in a URL (URLs end up in logs). Lists (dead letters, scheduled) are
// fetched again only when a stats event shows that their counts changed.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "jobqueue.token";
const POINTS = 300; // chart history: 5 minutes at the default 1 s event interval
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let priorities = [];
let last = { dead: -1, scheduled: -1 };
let charts = null;
const history = { t: [], depth: {}, enqueued: [], completed: [], dead: [] };

// -- API ------------------------------------------------------------------------------------

function headers(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(API + path, { ...options, headers: headers(options.headers) });
  if (response.status === 401) {
    await askToken();
    return api(path, options);
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

function post(path, doc) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(doc || {}),
  });
}

// The token is asked once and kept in sessionStorage: gone when the tab closes. Requests
// refused together share one prompt (a second prompt used to take the first one's place,
// and the requests waiting on the first never went on), and Escape does not close it:
// without a token the page can show nothing.
let tokenAsked = null;

function askToken() {
  if (tokenAsked) return tokenAsked;
  const dialog = $("login");
  tokenAsked = new Promise((resolve) => {
    $("login-form").onsubmit = async (event) => {
      event.preventDefault();
      const candidate = $("token").value.trim();
      const probe = await fetch(`${API}/stats`, { headers: { Authorization: `Bearer ${candidate}` } });
      if (probe.status === 401) {
        $("login-error").textContent = "This token is not known to the server.";
        return;
      }
      token = candidate;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("login-error").textContent = "";
      tokenAsked = null;
      dialog.close();
      resolve();
    };
  });
  dialog.oncancel = (event) => event.preventDefault();
  dialog.onclose = () => {
    if (tokenAsked) dialog.showModal(); // closed some other way while still needed
  };
  if (!dialog.open) dialog.showModal();
  $("token").focus();
  return tokenAsked;
}

function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.onclose = () => resolve(dialog.returnValue === "ok");
    dialog.returnValue = "";
    dialog.showModal();
  });
}

function toast(text) {
  $("toast").textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => ($("toast").textContent = ""), 4000);
}

// -- rendering ------------------------------------------------------------------------------

function cell(row, value, className) {
  const td = row.insertCell();
  td.textContent = value === null || value === undefined ? "" : String(value);
  if (className) td.className = className;
  return td;
}

function button(td, label, ariaLabel, onClick, className) {
  const b = document.createElement("button");
  b.textContent = label;
  b.setAttribute("aria-label", ariaLabel);
  if (className) b.className = className;
  b.onclick = onClick;
  td.appendChild(b);
}

function fill(tableId, rows, draw) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  for (const item of rows) draw(body.insertRow(), item);
}

function renderQueues(stats) {
  fill("queues", Object.entries(stats.queues), (row, [name, q]) => {
    row.dataset.queue = name;
    cell(row, name);
    for (const key of ["pending", "scheduled", "reserved", "running", "completed", "dead_letter"]) {
      cell(row, q[key], `num ${key}`);
    }
  });
  $("totals").textContent =
    `${stats.workers} live workers, ${stats.registered_workers - stats.workers} expired; ` +
    `${stats.completed} completed, ${stats.dead_letter} dead-lettered`;
}

function renderWorkers(workers) {
  fill("workers", workers, (row, w) => {
    cell(row, w.id);
    cell(row, w.alive ? "live" : "expired", w.alive ? "alive" : "dead");
    cell(row, w.heartbeat_age_seconds === null ? "?" : `${w.heartbeat_age_seconds.toFixed(1)} s`, "num");
    cell(row, w.breaker || "-");
    cell(row, w.running, "num");
    cell(row, w.reserved, "num");
  });
}

async function loadDeadLetters() {
  const view = await api("/dlq?n=100");
  fill("dlq", view.entries, (row, e) => {
    const id = e.payload && e.payload.id;
    row.dataset.job = id || "";
    cell(row, id || "(malformed)");
    cell(row, e.queue);
    cell(row, e.payload && e.payload.retries);
    cell(row, e.payload && e.payload.last_error, "reason");
    const td = cell(row, "");
    if (!id) return;
    button(td, "Requeue", `Requeue job ${id}`, () => act(`/jobs/${encodeURIComponent(id)}/requeue`, "POST", `Requeue 1 dead job (${id})?`));
    button(td, "Delete", `Delete job ${id}`, () => act(`/jobs/${encodeURIComponent(id)}`, "DELETE", `Delete 1 dead job (${id}) for good?`), "danger");
  });
}

async function loadScheduled() {
  const view = await api("/queues/scheduled/peek?n=100");
  fill("scheduled", view.entries, (row, e) => {
    const id = e.payload && e.payload.id;
    cell(row, id);
    cell(row, e.queue);
    cell(row, e.due);
    button(cell(row, ""), "Run now", `Run job ${id} now`, () => act(`/jobs/${encodeURIComponent(id)}/run-now`, "POST", `Run 1 scheduled job (${id}) now?`));
  });
}

async function act(path, method, question) {
  if (!(await confirmAction(question))) return;
  try {
    const report = await api(path, { method });
    toast(report.done ? `${report.action}: done` : `${report.action}: job not found (moved meanwhile?)`);
  } catch (error) {
    toast(error.message);
  }
  await Promise.all([loadDeadLetters(), loadScheduled()]);
}

// Requeue all and Purge act, queue by queue, on at most what their dialog showed, oldest
// first: a job that died while the dialog was open stays dead (new deaths go to the other
// end of the list).
async function requeueAll() {
  const queue = $("dlq-queue").value || null;
  const plan = await post("/dlq/requeue", { queue, all: true, dry_run: true });
  if (!plan.moved) return toast("no dead jobs to requeue");
  if (!(await confirmAction(`Requeue ${plan.moved} dead jobs of ${queue || "every queue"}?`))) return;
  let moved = 0, skipped = 0;
  for (const [priority, shown] of Object.entries(plan.queues)) {
    if (!shown.moved) continue;
    const done = await post("/dlq/requeue", { queue: priority, n: shown.moved });
    moved += done.moved;
    skipped += done.skipped;
  }
  toast(`requeued ${moved} jobs` + (skipped ? `, ${skipped} malformed skipped` : ""));
  await loadDeadLetters();
}

async function purge() {
  const queue = $("dlq-queue").value;
  const query = queue ? `?queue=${encodeURIComponent(queue)}&` : "?";
  const plan = await api(`/dlq${query}dry_run=true`, { method: "DELETE" });
  if (!plan.purged) return toast("no dead jobs to purge");
  if (!(await confirmAction(`Delete ${plan.purged} dead jobs of ${queue || "every queue"} for good?`))) return;
  let purged = 0;
  for (const [priority, shown] of Object.entries(plan.queues)) {
    if (!shown) continue;
    const done = await api(`/dlq?queue=${encodeURIComponent(priority)}&n=${shown}`, { method: "DELETE" });
    purged += done.purged;
  }
  toast(`purged ${purged} jobs`);
  await loadDeadLetters();
}

async function lookUp(event) {
  event.preventDefault();
  const id = $("job-id").value.trim();
  try {
    $("job-detail").textContent = JSON.stringify(await api(`/jobs/${encodeURIComponent(id)}`), null, 2);
  } catch (error) {
    $("job-detail").textContent = error.message;
  }
}

// -- charts ---------------------------------------------------------------------------------

function chart(target, labels) {
  const series = [{}, ...labels.map((label, i) => ({ label, stroke: ["#0969da", "#1a7f37", "#b42318", "#8250df"][i % 4] }))];
  const width = () => Math.max(260, target.clientWidth);
  const plot = new uPlot({ width: width(), height: 180, series, axes: [{}, { size: 60 }] }, [[], ...labels.map(() => [])], target);
  window.addEventListener("resize", () => plot.setSize({ width: width(), height: 180 }));
  return plot;
}

function plot(doc) {
  if (!charts) {
    charts = { depth: chart($("depth-chart"), priorities), rate: chart($("rate-chart"), ["enqueued", "completed", "dead"]) };
  }
  const h = history;
  h.t.push(Date.parse(doc.at) / 1000);
  for (const p of priorities) (h.depth[p] = h.depth[p] || []).push(doc.stats.queues[p].pending);
  const rates = doc.rates || { enqueued: null, completed: null, dead_letter: null };
  h.enqueued.push(rates.enqueued);
  h.completed.push(rates.completed);
  h.dead.push(rates.dead_letter);
  if (h.t.length > POINTS) {
    for (const list of [h.t, h.enqueued, h.completed, h.dead, ...Object.values(h.depth)]) list.shift();
  }
  charts.depth.setData([h.t, ...priorities.map((p) => h.depth[p])]);
  charts.rate.setData([h.t, h.enqueued, h.completed, h.dead]);
}

// -- events ---------------------------------------------------------------------------------

function onStats(doc) {
  const stats = doc.stats;
  if (!priorities.length) {
    priorities = Object.keys(stats.queues);
    for (const p of priorities) $("dlq-queue").add(new Option(p, p));
  }
  renderQueues(stats);
  renderWorkers(doc.workers);
  plot(doc);
  const scheduled = priorities.reduce((n, p) => n + stats.queues[p].scheduled, 0);
  if (stats.dead_letter !== last.dead) loadDeadLetters();
  if (scheduled !== last.scheduled) loadScheduled();
  last = { dead: stats.dead_letter, scheduled };
  $("live").textContent = `live · ${new Date(doc.at).toLocaleTimeString()}`;
  $("live").className = "";
}

function onJob(doc) {
  if (doc.state === "dead_letter") toast(`job ${doc.id} dead-lettered: ${doc.last_error}`);
}

function dispatch(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (!data.length) return;
  const doc = JSON.parse(data.join("\n"));
  if (name === "stats") onStats(doc);
  else if (name === "job") onJob(doc);
  else if (name === "error") stale(doc.message);
}

function stale(message) {
  $("live").textContent = `stale: ${message}`;
  $("live").className = "stale";
}

async function listen() {
  for (;;) {
    try {
      const response = await fetch(`${API}/events`, { headers: headers({ Accept: "text/event-stream" }) });
      if (response.status === 401) {
        await askToken();
        continue;
      }
      if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      stale("the event stream ended; reconnecting");
    } catch (error) {
      stale(`${error.message}; reconnecting`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function start() {
  $("requeue-all").onclick = () => requeueAll().catch((e) => toast(e.message));
  $("purge").onclick = () => purge().catch((e) => toast(e.message));
  $("job-form").onsubmit = lookUp;
  await api("/stats"); // asks for a token first when the server wants one
  listen();
}

start();
