// Backprop Lab's pages: read the typed API (/api/v1) with the caller's token and draw what it says.
// No framework, nothing fetched from elsewhere; charts are SVG the server draws (routes/charts.py).
"use strict";

const TOKEN = "bplab-token";
const page = document.body.dataset.page;
const ident = document.body.dataset.id;
const $ = (selector) => document.querySelector(selector);

// -- the API ------------------------------------------------------------------------------------
function requestHeaders(accept) {
  const headers = { Accept: accept };
  const token = localStorage.getItem(TOKEN);
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

async function api(path, accept = "application/json") {
  const response = await fetch(path, { headers: requestHeaders(accept) });
  if (response.status === 401) {
    localStorage.removeItem(TOKEN);
    await askToken();
    return api(path, accept);
  }
  if (!response.ok) {
    let problem;
    try { problem = await response.json(); } catch { problem = { detail: response.statusText }; }
    const error = new Error(`${response.status}: ${problem.detail || problem.title || response.statusText}`);
    error.status = response.status;
    error.problem = problem;
    throw error;
  }
  if (accept === "application/json") return response.json();
  return accept.startsWith("text/") || accept === "image/svg+xml" ? response.text() : response.blob();
}

// A file of the API saved by the browser (fetched with the token, which a plain link would not send).
async function download(path, accept, filename) {
  const body = await api(path, accept);
  const link = el("a", { href: URL.createObjectURL(body instanceof Blob ? body : new Blob([body], { type: accept })), download: filename });
  link.click();
}

let asking = null;
function askToken() {  // once per browser: the token is kept in localStorage
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const dialog = $("#login");
    $("#login-form").addEventListener("submit", () => {
      localStorage.setItem(TOKEN, $("#token").value.trim());
      asking = null;
      resolve();
    }, { once: true });
    dialog.showModal();
  });
  return asking;
}

function say(text, error = false) {
  const status = $("#status");
  status.textContent = text;
  status.className = error ? "error" : "";
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svgEl(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function ready() {  // the page has drawn what it first shows (tests and bench/pages.py wait for it)
  window.pageReadyAt = window.pageReadyAt ?? performance.now();
  window.pageReady = true;
}

const fmt = (value, digits = 4) => (value === null || value === undefined ? "–"
  : Number.isInteger(value) && Math.abs(value) < 1e9 ? String(value) : String(Number(Number(value).toPrecision(digits))));
const when = (text) => (text ? new Date(text).toLocaleString() : "–");

// A table whose column titles sort it (click again: the other way); kept sorted across refreshes.
// columns: [{ title, value(item) -> what it sorts by, cell(item) -> node or text (default: the value) }]
function sortableTable(table, columns, items, rowAttributes = () => ({})) {
  const sort = table.sortState || (table.sortState = { column: null, descending: false });
  const ordered = [...items];
  if (sort.column !== null && columns[sort.column]) {
    const value = columns[sort.column].value;
    const missing = (v) => v === null || v === undefined || (typeof v === "number" && Number.isNaN(v));
    ordered.sort((a, b) => {
      const x = value(a), y = value(b);
      if (missing(x) || missing(y)) return missing(x) - missing(y);  // the empty last, either way
      const order = typeof x === "number" && typeof y === "number" ? x - y : naturalCompare(String(x), String(y));
      return sort.descending ? -order : order;
    });
  }
  const head = el("tr", {}, ...columns.map((column, k) => {
    const th = el("th", { "data-column": column.title, class: column.value ? "sorts" : "" }, column.title);
    if (column.value) {
      if (sort.column === k) th.setAttribute("aria-sort", sort.descending ? "descending" : "ascending");
      th.addEventListener("click", () => {
        sort.descending = sort.column === k ? !sort.descending : false;
        sort.column = k;
        sortableTable(table, columns, items, rowAttributes);
      });
    }
    return th;
  }));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...ordered.map((item) => el("tr", rowAttributes(item), ...columns.map((column) => {
    const content = column.cell ? column.cell(item) : column.value(item);
    return el("td", column.class ? { class: column.class } : {}, ...[].concat(content ?? "–").map((c) => (typeof c === "number" ? fmt(c) : c)));
  }))));
}

// Text with numbers in it compared as a person reads it: "lr=0.001" < "lr=0.01" < "lr=0.1" < "lr=1", "job 9" < "job 10".
const NUMBER = /(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)/i;
function naturalCompare(a, b) {
  const x = a.split(NUMBER), y = b.split(NUMBER);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const order = i % 2 ? Number(x[i]) - Number(y[i]) : x[i].localeCompare(y[i]);
    if (order) return order;
  }
  return x.length - y.length;
}

// Jobs ticked on a list (kept while it refreshes); the button opens the compare page for them.
function chooser(button, hint) {
  const chosen = new Set();
  const update = () => {
    button.disabled = chosen.size < 2 || chosen.size > 10;
    hint.textContent = chosen.size ? `${chosen.size} chosen${chosen.size > 10 ? " (at most 10)" : ""}` : "tick 2 to 10 jobs to compare them";
  };
  button.addEventListener("click", () => { location.href = `/compare?jobs=${[...chosen].join(",")}`; });
  return {
    box(id) {
      const box = el("input", { type: "checkbox", class: "choose", "data-job": id, title: `compare job ${id}` });
      box.checked = chosen.has(id);
      box.addEventListener("change", () => { if (box.checked) chosen.add(id); else chosen.delete(id); update(); });
      return box;
    },
  };
}

// Charts a page draws, in a fixed order whatever order their answers come in.
function chartSlots(container, names) {
  for (const name of names) {
    if (!container.querySelector(`[data-chart="${name}"]`)) container.append(el("figure", { class: "chart", "data-chart": name, hidden: "" }));
  }
}

// The smoothing and log-scale controls (kept in the browser), calling `redraw` when they change.
function chartControls(redraw, remember = true) {
  const slider = $("#smoothing"), shown = $("#smoothing-value"), log = $("#log-loss");
  if (remember && localStorage.getItem("bplab-smoothing") !== null) slider.value = localStorage.getItem("bplab-smoothing");
  if (remember) log.checked = localStorage.getItem("bplab-log-loss") === "true";
  shown.textContent = slider.value;
  let timer = null;
  slider.addEventListener("input", () => {
    shown.textContent = slider.value;
    if (remember) localStorage.setItem("bplab-smoothing", slider.value);
    clearTimeout(timer);
    timer = setTimeout(redraw, 150);
  });
  log.addEventListener("change", () => { if (remember) localStorage.setItem("bplab-log-loss", String(log.checked)); redraw(); });
  return () => `smoothing=${slider.value}${log.checked ? "&scale=log" : ""}`;
}

async function chartInto(container, path, name) {
  const box = el("figure", { class: "chart", "data-chart": name });
  box.innerHTML = await api(path, "image/svg+xml");
  const old = container.querySelector(`[data-chart="${name}"]`);  // its slot (chartSlots) keeps the order
  if (old) old.replaceWith(box); else container.append(box);
}

// Server-Sent Events over fetch (EventSource cannot send the token).
async function follow(path, onEvent) {
  // Server-Sent Events over fetch (it can send the token). The server ends a stream that stays idle
  // or open too long; it is reopened with Last-Event-ID until the `end` event, and a stream refused
  // for now (429, 503) is retried after Retry-After.
  let lastId = null, retryMs = 5000;
  for (;;) {
    const headers = { Accept: "text/event-stream" };
    const token = localStorage.getItem(TOKEN);
    if (token) headers.Authorization = `Bearer ${token}`;
    if (lastId) headers["Last-Event-ID"] = lastId;
    const response = await fetch(path, { headers });
    if (response.status === 429 || response.status === 503) {
      await new Promise((done) => setTimeout(done, 1000 * Number(response.headers.get("Retry-After") || 5)));
      continue;
    }
    if (!response.ok) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message", data = null;
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("id: ")) lastId = line.slice(4);
          else if (line.startsWith("retry: ")) retryMs = Number(line.slice(7));
          else if (line.startsWith("data: ")) data = JSON.parse(line.slice(6));
        }
        if (data !== null) onEvent(event, data);
        if (event === "end") return;
      }
    }
    await new Promise((done) => setTimeout(done, Math.min(retryMs, 1000)));
  }
}

// -- jobs ---------------------------------------------------------------------------------------
async function jobsPage() {
  const form = $("#filters");
  const params = new URLSearchParams(location.search);
  for (const [key, value] of params) if (form.elements[key]) form.elements[key].value = value;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const field of form.elements) if (field.name && field.value) query.set(field.name, field.value);
    history.replaceState(null, "", `?${query}`);
    refresh();
  });
  const choose = chooser($("#compare"), $("#chosen"));
  async function refresh() {
    const query = new URLSearchParams(location.search);
    query.set("limit", "200");
    const list = await api(`/api/v1/jobs?${query}`);
    sortableTable($("#jobs"), jobColumns(list.jobs, choose), list.jobs, (job) => ({ "data-job": job.id, class: job.status }));
    say(`${list.jobs.length} job${list.jobs.length === 1 ? "" : "s"}${list.next_cursor ? " (the newest 200)" : ""}`);
    ready();
    if (list.jobs.some((job) => job.status === "queued" || job.status === "running" || job.mlflow.state === "pending")) setTimeout(refresh, 2000);
  }
  await refresh();
}

// The list's columns; a sweep's swept parameters as columns of their own when the jobs listed have them.
function jobColumns(jobs, choose) {
  const swept = [...new Set(jobs.flatMap((job) => Object.keys(job.sweep_params || {})))];
  const paramValue = (path) => (job) => {
    const value = (job.sweep_params || {})[path];
    return value === undefined ? null : value;
  };
  const s = (job) => job.summary || {};
  return [
    { title: "", cell: (job) => choose.box(job.id) },
    { title: "id", value: (job) => job.id, cell: (job) => el("a", { href: `/jobs/${job.id}` }, job.id) },
    { title: "name", value: (job) => job.name || "" },
    { title: "experiment", value: (job) => job.experiment },
    { title: "status", value: (job) => job.status, class: "state" },
    { title: "progress", value: (job) => job.progress.fraction,
      cell: (job) => [el("progress", { max: job.progress.total_steps || 1, value: job.progress.step }), ` ${job.progress.step}/${job.progress.total_steps}`] },
    ...swept.map((path) => ({ title: path, value: paramValue(path), cell: (job) => {
      const value = paramValue(path)(job);
      return value === null ? "–" : typeof value === "number" ? fmt(value) : JSON.stringify(value).replace(/^"|"$/g, "");
    } })),
    { title: "train loss", value: (job) => s(job).model_train_loss ?? s(job).final_train_loss ?? null },
    { title: "val loss", value: (job) => s(job).model_val_loss ?? s(job).final_val_loss ?? null },
    { title: "val acc", value: (job) => s(job).model_val_accuracy ?? s(job).final_val_accuracy ?? null,
      cell: (job) => fmt(s(job).model_val_accuracy ?? s(job).final_val_accuracy, 3) },
    { title: "diagnoses", value: (job) => job.diagnoses.join(" "), cell: (job) => badges(job.diagnoses) },
    { title: "duration", value: (job) => s(job).duration_seconds ?? null,
      cell: (job) => (s(job).duration_seconds === undefined ? "–" : `${s(job).duration_seconds.toFixed(2)} s`) },
    { title: "created", value: (job) => job.created_at, cell: (job) => when(job.created_at) },
    { title: "links", cell: (job) => {
      const links = [el("a", { href: `/api/v1/jobs/${job.id}` }, "REST")];
      if (job.mlflow.run_url) links.push(" ", el("a", { href: job.mlflow.run_url }, "MLflow"));
      const lag = mirrorLag(job);
      if (lag && job.mlflow.state !== "synced") links.push(" ", el("span", { class: "mirror", title: lag }, lag.replace("MLflow: ", "")));
      return links;
    } },
  ];
}

// -- sweeps -------------------------------------------------------------------------------------
async function sweepsPage() {
  const found = [];
  let next = "/api/v1/sweeps?limit=200";
  while (next && found.length < 1000) {
    const pageOf = await api(next);
    found.push(...pageOf.sweeps);
    next = pageOf.next;
  }
  const done = (sweep) => Object.entries(sweep.progress.by_state).filter(([k]) => !["queued", "running"].includes(k)).reduce((n, [, c]) => n + c, 0);
  sortableTable($("#sweeps"), [
    { title: "id", value: (w) => w.id, cell: (w) => el("a", { href: `/sweeps/${w.id}` }, w.id) },
    { title: "name", value: (w) => w.name || "", cell: (w) => el("a", { href: `/sweeps/${w.id}` }, w.name || `sweep ${w.id}`) },
    { title: "experiment", value: (w) => w.experiment },
    { title: "status", value: (w) => w.status, class: "state" },
    { title: "strategy", value: (w) => w.strategy },
    { title: "jobs ended", value: (w) => done(w) / (w.progress.planned_jobs || 1),
      cell: (w) => [el("progress", { max: w.progress.planned_jobs || 1, value: done(w) }), ` ${done(w)}/${w.progress.planned_jobs}`] },
    { title: "objective", value: (w) => `${w.objective.goal} ${w.objective.metric}` },
    { title: "created", value: (w) => w.created_at, cell: (w) => when(w.created_at) },
    { title: "jobs", cell: (w) => el("a", { href: `/?sweep_id=${w.id}` }, "its jobs") },
  ], found, (w) => ({ "data-sweep": w.id, class: w.status }));
  say(found.length ? `${found.length} sweep${found.length === 1 ? "" : "s"}` : "no sweeps yet: bplab sweep examples/sweep.yaml");
  ready();
  if (found.some((w) => w.status === "running")) setTimeout(sweepsPage, 3000);
}

// How far the job's MLflow run is behind the store (runs get their status first, series follow).
function mirrorLag(job) {
  const m = job.mlflow;
  if (m.state === "disabled") return "";
  if (m.state === "failed") return `MLflow: failed (${m.error || "see the job"})`;
  if (m.state === "synced") return "MLflow: complete";
  const done = m.points.toLocaleString("en");
  const due = Math.max(m.points, m.points_due).toLocaleString("en");
  if (!m.run_id) return "MLflow: run not made yet";
  const run = m.run_finished_at ? "run finished" : (job.status === "queued" || job.status === "running" ? "run open" : "run finishing");
  return `MLflow: ${run}, ${done} of ${due} points${m.error ? ` (retrying: ${m.error})` : ""}`;
}

// -- a job --------------------------------------------------------------------------------------
const CHART_NAMES = ["loss", "gradient_norms", "update_ratios", "dead_units", "vanishing_ratio", "sharpness"];
const CHART_KEYS = { loss: ["loss"], gradient_norms: ["grad_norm/"], update_ratios: ["update_ratio/"], dead_units: ["dead_fraction/"],
                     vanishing_ratio: ["vanishing_ratio"], sharpness: ["sharpness_x_lr"] };
const MAX_DRAWN_UNITS = 16;  // wider layers are drawn as bands: a histogram, a list of the units on click
// The summary as the page shows it: the model's own figures first, then the epochs', then the last mini-batch's.
const SUMMARY_LABELS = [
  ["model_train_loss", "loss of the final model, training set"], ["model_train_accuracy", "accuracy of the final model, training set"],
  ["model_val_loss", "loss of the final model, validation set"], ["model_val_accuracy", "accuracy of the final model, validation set"],
  ["best_val_loss", "best epoch validation loss"], ["best_train_loss", "best epoch training loss"],
  ["final_val_loss", "last epoch's validation loss"], ["final_val_accuracy", "last epoch's validation accuracy"],
  ["final_train_loss", "last epoch's training loss"], ["final_train_accuracy", "last epoch's training accuracy"],
  ["final_loss", "last mini-batch's loss (before its update)"],
];

async function jobPage() {
  const id = ident;
  let job;
  try {
    job = await api(`/api/v1/jobs/${id}?include=spec`);
  } catch (error) {
    say(error.status === 404 ? `404: no job ${id}` : error.message, true);
    $("#title").textContent = `Job ${id}: not found`;
    ready();
    return;
  }
  const { params } = await api(`/api/v1/jobs/${id}?include=params`);
  const widths = params.architecture.split("-").map((part) => parseInt(part, 10));
  const state = { job, widths, steps: [], traced: false, chosen: null };
  overview(job);
  $("#spec").textContent = JSON.stringify(job.spec, null, 2);
  state.chartQuery = chartControls(() => drawCharts(state.job, state.chartQuery()));
  await loadDiagnoses(state);
  $("#band-values").onchange = () => showStep(state, state.chosen ?? undefined);
  await loadSteps(state);
  await Promise.all([drawCharts(job, state.chartQuery()), showStep(state)]);
  landscapeControls(state);
  forkControls(state);
  if (!["queued", "running"].includes(job.status) && job.progress.step > 0) {
    $("#every-step-choice").hidden = false;
    $("#every-step").onchange = async () => { await loadSteps(state); await showStep(state); };
  }
  ready();
  if (job.status === "queued" || job.status === "running") live(state);
  followMirror(job.id);
}

// "Fork from this step": a new job from this one's exact state at the slider's step, with the changes typed
// (dotted paths as JSON); the page of the fork opens.
function forkControls(state) {
  const { job } = state;
  if (!["succeeded", "failed", "cancelled", "diverged", "running"].includes(job.status)) return;
  $("#fork-controls").hidden = false;
  $("#fork").onclick = async () => {
    const step = state.steps[Number($("#step").value)] ?? job.progress.step;
    let changes;
    try { changes = JSON.parse($("#fork-set").value || "{}"); } catch { say("the changes are not JSON: {\"optimizer.lr\": 0.05}", true); return; }
    const headers = { ...requestHeaders("application/json"), "Content-Type": "application/json" };
    const response = await fetch(`/api/v1/jobs/${job.id}/fork`, { method: "POST", headers, body: JSON.stringify({ step, set: changes }) });
    const answer = await response.json();
    if (!response.ok) { say(`${response.status}: ${answer.detail}`, true); return; }
    window.location.assign(`/jobs/${answer.id}`);
  };
}

// The loss landscape around a step of an ended job: a worker replays the job to the step and computes
// the grid (202 until then, asked again every second), then the server's contour plot is shown.
function landscapeControls(state) {
  const { job } = state;
  if (!["succeeded", "failed", "cancelled", "diverged"].includes(job.status)) return;
  $("#landscape-section").hidden = false;
  const input = $("#landscape-step");
  input.max = job.progress.step;
  input.value = job.progress.step;
  $("#landscape-here").onclick = () => {
    const step = state.steps[Number($("#step").value)];
    if (step !== undefined) input.value = step;
    drawLandscape(job, Number(input.value), $("#landscape-directions").value);
  };
  $("#landscape-draw").onclick = () => drawLandscape(job, Number(input.value), $("#landscape-directions").value);
}

async function drawLandscape(job, step, directions) {
  const box = $("#landscape"), hint = $("#landscape-hint");
  const path = `/api/v1/jobs/${job.id}/landscape?step=${step}&directions=${directions}`;
  box.dataset.state = "computing";
  for (let asked = 0; asked < 600; asked += 1) {
    const response = await fetch(path, { headers: requestHeaders("image/svg+xml") });
    if (response.status === 202) {
      hint.textContent = `A worker is replaying the job to step ${step.toLocaleString()} and computing the grid… (${asked} s)`;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    if (!response.ok) {
      const problem = await response.json().catch(() => ({ detail: response.statusText }));
      hint.textContent = `${response.status}: ${problem.detail || problem.title}`;
      box.dataset.state = "failed";
      return;
    }
    box.innerHTML = await response.text();
    hint.textContent = `The training loss on a plane through the weights after ${step.toLocaleString()} steps; the red line is the ` +
      "path of the recorded steps projected onto it (hover a point for its loss and its distance from the plane; far from the " +
      "plane, the colours under it are not its loss).";
    box.dataset.state = "drawn";
    return;
  }
  hint.textContent = "No answer after 10 minutes: is a training worker running?";
  box.dataset.state = "failed";
}

// The MLflow run's lag, asked for every 2 s until it has caught up (runs first, series after).
function followMirror(id) {
  const timer = setInterval(async () => {
    const job = await api(`/api/v1/jobs/${id}`);
    const span = $("#mirror");
    if (span) span.textContent = `(${mirrorLag(job).replace("MLflow: ", "")})`;
    if (job.mlflow.state !== "pending") clearInterval(timer);
  }, 2000);
}

function overview(job) {
  const s = job.summary || {};
  const box = $("#overview");
  const links = el("p", {}, el("a", { href: `/api/v1/jobs/${job.id}` }, "REST"), " · ",
    el("a", { href: "#", id: "csv" }, "metrics as CSV"));
  if (job.mlflow.run_url) links.append(" · ", el("a", { href: job.mlflow.run_url, id: "mlflow" }, "MLflow run"));
  if (mirrorLag(job)) links.append(" ", el("span", { id: "mirror", class: "mirror" }, `(${mirrorLag(job).replace("MLflow: ", "")})`));
  if (job.sweep_id) links.append(" · ", el("a", { href: `/sweeps/${job.sweep_id}` }, `sweep ${job.sweep_id}`));
  if (job.forked_from) {
    links.append(" · ", el("a", { href: `/jobs/${job.forked_from.job}`, id: "forked-from" },
      `forked from job ${job.forked_from.job} at step ${job.forked_from.step.toLocaleString()}`));
  }
  const data = (job.spec || {}).data || {};
  if (data.dataset) {
    links.append(" · ", el("a", { href: `/datasets#dataset-${data.dataset}`, id: "dataset" },
      `dataset ${data.dataset}: ${data.rows} rows, target ${[].concat(data.target).join(", ")}`));
  }
  const formats = { onnx: "application/onnx", safetensors: "application/octet-stream", npz: "application/octet-stream" };
  if (job.status === "succeeded") {
    links.append(" · model as ");
    Object.entries(formats).forEach(([format, accept], i) => {
      const link = el("a", { href: `/api/v1/jobs/${job.id}/model?format=${format}`, id: `model-${format}`,
        title: { onnx: "ONNX Runtime and any ONNX tool", safetensors: "a PyTorch state_dict (docs: Models out)", npz: "NumPy arrays" }[format] },
      format === "onnx" ? "ONNX" : format);
      link.addEventListener("click", (event) => {
        event.preventDefault();
        download(link.getAttribute("href"), accept, `job-${job.id}.${format}`).catch((error) => say(error.message));
      });
      links.append(...(i ? [", ", link] : [link]));
    });
  }
  for (const version of job.registered || []) {
    links.append(" · ", el("a", { href: version.url || "#", class: "registered" }, `registered ${version.name} v${version.version}`));
  }
  const rows = [["status", job.status], ["progress", el("span", { id: "progress-steps" }, progressText(job.progress))],
    ["experiment", job.experiment], ["created", when(job.created_at)]];
  const labelled = new Map(SUMMARY_LABELS);
  const known = SUMMARY_LABELS.map(([key]) => key).filter((key) => key in s);
  for (const key of [...known, ...Object.keys(s).filter((key) => !labelled.has(key))]) {
    const value = s[key];
    rows.push([el("span", { title: key }, labelled.get(key) || key),
      typeof value === "number" ? fmt(value, 6) : Array.isArray(value) ? value.join(", ") : String(value)]);
  }
  const table = el("table", { id: "summary" }, ...rows.map(([k, v]) => el("tr", { "data-field": k.title || k }, el("th", {}, k), el("td", {}, v))));
  box.replaceChildren(links, table);
  if (job.error) box.append(el("pre", { class: "error", id: "error" }, JSON.stringify(job.error, null, 2)));
  $("#title").textContent = `Job ${job.id}${job.name ? `: ${job.name}` : ""}`;
  $("#csv").addEventListener("click", (event) => {
    event.preventDefault();
    download(`/api/v1/jobs/${job.id}/metrics`, "text/csv", `job-${job.id}-metrics.csv`).catch((error) => say(error.message));
  });
  say(job.status === "running" ? "training: the charts follow it live" : "");
}

// The job's diagnoses, listed with their sentences; the network drawing marks the dead units they name.
async function loadDiagnoses(state) {
  state.diagnoses = (await api(`/api/v1/jobs/${state.job.id}/diagnoses`)).diagnoses;
  $("#diagnoses-section").hidden = !state.diagnoses.length;
  $("#diagnoses").replaceChildren(...state.diagnoses.map((d) => el("li", { class: `diagnosis ${d.severity}`, "data-kind": d.kind },
    el("span", { class: `badge ${d.severity}` }, d.kind), ` step ${d.step.toLocaleString("en")}`,
    d.ended_step === null ? "" : `–${d.ended_step.toLocaleString("en")}`, d.layer ? ` · ${d.layer}` : "", ": ", d.sentence)));
}

// The units of layer l that a diagnosis holds dead at `step` (all of them for a dead layer), and whether the layer is.
function diagnosedDead(state, l, step) {
  const holding = (state.diagnoses || []).filter((d) => d.layer === `dense_${l}` && ["dead_units", "layer_dead"].includes(d.kind)
    && d.step <= step && (d.ended_step === null || d.ended_step > step));
  const units = new Set(holding.flatMap((d) => (d.kind === "dead_units" ? d.evidence.units : [...Array(state.widths[l]).keys()])));
  return { units, layer: holding.some((d) => d.kind === "layer_dead") };
}

const progressText = (p) => `${p.step.toLocaleString("en")}/${p.total_steps.toLocaleString("en")} steps`;

async function loadSteps(state) {
  const recorded = await api(`/api/v1/jobs/${state.job.id}/recorded-steps`);
  state.traced = recorded.trace.length > 0;
  state.steps = state.traced ? recorded.trace : recorded.gradients;
  if ($("#every-step").checked) {  // an ended job's every step: those not recorded are replayed by a worker when shown
    state.traced = true;
    state.steps = Array.from({ length: state.job.progress.step }, (_, i) => i);
  }
  if (!state.steps.length) {  // only summaries: per-tensor statistics at the recorded steps
    const loss = (await api(`/api/v1/jobs/${state.job.id}/metrics?keys=loss&max_points=200`)).loss;
    state.steps = loss ? loss.steps : [];
  }
  const slider = $("#step");
  slider.max = Math.max(0, state.steps.length - 1);
  if (state.chosen === null || !state.steps.includes(state.chosen)) slider.value = 0;
  let resting = null;  // every step: a step is asked for once the slider rests (each one not recorded is a worker's replay)
  slider.oninput = () => {
    if (!$("#every-step").checked) { showStep(state, state.steps[Number(slider.value)]); return; }
    $("#step-label").textContent = `step ${state.steps[Number(slider.value)]}`;
    clearTimeout(resting);
    resting = setTimeout(() => showStep(state, state.steps[Number(slider.value)]), 300);
  };
  const play = $("#play");
  play.onclick = () => {
    if (state.timer) { clearInterval(state.timer); state.timer = null; play.textContent = "▶ play"; return; }
    play.textContent = "❚❚ pause";
    state.timer = setInterval(() => {
      slider.value = (Number(slider.value) + 1) % (state.steps.length || 1);
      showStep(state, state.steps[Number(slider.value)]);
    }, 700);
  };
}

async function showStep(state, step = state.steps[Number($("#step").value)]) {
  state.chosen = step ?? null;
  $("#step-label").textContent = step === undefined ? "no recorded step" : `step ${step}`;
  const job = state.job;
  let trace = null, gradients = null;
  if (step !== undefined && state.traced) {
    trace = await replayed(state, `/api/v1/jobs/${job.id}/trace?step=${step}`, step);
    const table = await api(`/api/v1/jobs/${job.id}/trace?step=${step}`, "text/plain");
    if (state.chosen !== step) return;  // the slider moved on while this step was fetched (or replayed)
    $("#trace").textContent = table;
    if (trace.replayed) $("#step-label").textContent = `step ${step} (replayed)`;
  } else if (step !== undefined && state.steps.length && !state.traced && job.spec.record && job.spec.record.gradients === "full") {
    gradients = (await api(`/api/v1/jobs/${job.id}/gradients?step=${step}`)).gradients;
  }
  const ended = !["queued", "running"].includes(job.status);
  let weights = null;
  if (trace) weights = trace.layers.map((layer) => layer.W);
  else if (ended) weights = (await api(`/api/v1/jobs/${job.id}/model`)).weights;
  drawNetwork(state, trace, weights, gradients);
  if (!trace && step !== undefined) await tensorStats(job, step);
  // the decision over 2-D inputs: at a traced step (its weights), else the final model (when it is a usable one)
  if (state.widths[0] === 2 && (trace || ["succeeded", "cancelled"].includes(job.status))) await boundary(job, trace ? step : null);
}

// A step's trace, recorded or not: a step not recorded is answered 202 while a worker replays it (asked again each second).
async function replayed(state, path, step) {
  for (let asked = 0; asked < 600; asked += 1) {
    const response = await fetch(path, { headers: requestHeaders("application/json") });
    if (response.status !== 202) return api(path);
    if (state.chosen === step) $("#step-label").textContent = `step ${step}: replaying… (${asked} s)`;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`step ${step} was not replayed within 10 minutes: is a training worker running?`);
}

async function tensorStats(job, step) {
  const keys = await api(`/api/v1/jobs/${job.id}/metrics/keys`);
  const wanted = keys.keys.filter((k) => /^(grad_norm|update_ratio|weight_norm)\//.test(k));
  if (!wanted.length) return;
  const series = await api(`/api/v1/jobs/${job.id}/metrics?keys=${encodeURIComponent(wanted.join(","))}&start=${step}&end=${step}`);
  const tensors = [...new Set(wanted.map((k) => k.split("/")[1]))];
  const rows = tensors.map((t) => el("tr", {}, el("td", {}, t), ...["grad_norm", "weight_norm", "update_ratio"].map(
    (family) => el("td", {}, fmt(series[`${family}/${t}`]?.values[0])))));
  $("#tensor-stats").replaceChildren(el("table", {}, el("tr", {}, el("th", {}, `at step ${step}`), el("th", {}, "‖∂L/∂W‖"),
    el("th", {}, "‖W‖"), el("th", {}, "‖ΔW‖/‖W‖")), ...rows));
}

async function boundary(job, step) {
  const query = step === null ? "" : `?step=${step}`;
  chartSlots($("#charts"), [...CHART_NAMES, "decision_boundary"]);
  await chartInto($("#charts"), `/api/v1/jobs/${job.id}/charts/decision_boundary${query}`, "decision_boundary");
}

// What a diagnosis kind weighs (engine/diagnoses.py SEVERITY), for the badges of lists.
const SEVERITY = { dead_units: "warning", layer_dead: "error", vanishing_gradients: "warning", exploding_gradients: "warning",
  saturated_units: "warning", loss_rising: "warning", diverged: "error", plateau: "info", overfitting: "warning", edge_of_stability: "warning" };
function badges(kinds, counts = null) {
  return kinds.length ? kinds.flatMap((kind) => [el("span", { class: `badge ${SEVERITY[kind] || "info"}`, title: kind },
    counts ? `${kind} ×${counts[kind]}` : kind), " "]) : "";
}

const subscript = (n) => String(n).replace(/\d/g, (d) => "₀₁₂₃₄₅₆₇₈₉"[d]);

// The statistics of a weight matrix, as the band edges of a wide layer carry them.
function matrixStats(W) {
  const flat = W.flat(), n = flat.length;
  const mean = flat.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(flat.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  const peak = flat.reduce((a, b) => Math.max(a, Math.abs(b)), 0);
  const meanAbs = flat.reduce((a, b) => a + Math.abs(b), 0) / n;
  return { mean, std, peak, meanAbs, positive: flat.filter((w) => w > 0).length / n, rows: W.length, cols: W[0].length };
}

function drawNetwork(state, trace, weights, gradients) {
  const widths = trace ? [trace.X[0].length, ...trace.layers.map((l) => l.W.length)] : state.widths;
  const box = $("#network");
  const drawn = (n) => n <= MAX_DRAWN_UNITS;
  const wide = widths.some((n) => !drawn(n));
  const most = Math.max(1, ...widths.filter(drawn));
  const spacing = Math.min(62, 560 / most);  // the whole network fits one screen
  const inner = Math.max(spacing * most, wide ? 360 : 0);
  const width = 220 * widths.length, height = 70 + inner;
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "network-svg", role: "img" });
  const x = (layer) => 90 + 200 * layer;
  const y = (layer, unit) => 40 + inner * ((unit + 0.5) / widths[layer]);
  const radius = Math.min(16, spacing / 2.6), labels = spacing >= 44;
  const sample = 0;  // the batch's first sample (the post's example has one)
  const chosen = $("#band-values").value;  // what a band's histogram shows at a traced step: a, z or δ
  $("#band-choice").hidden = !(wide && trace);
  const span = (l) => (drawn(widths[l]) ? [y(l, 0), y(l, widths[l] - 1)] : [40, 40 + inner]);
  // edges: between drawn units, coloured by the weight's sign and sized by its size, with ∂L/∂W where there
  // is room; next to a band, one shape shaded by the matrix's statistics (hover for them)
  const stats = weights ? weights.map(matrixStats) : null;
  const heaviest = stats ? Math.max(...stats.map((m) => m.meanAbs), 1e-12) : 1;
  for (let l = 1; l < widths.length; l++) {
    const W = weights ? weights[l - 1] : null;
    const dW = trace ? trace.layers[l - 1].dW : gradients ? gradients[`dense_${l}.weight`] : null;
    if (!drawn(widths[l]) || !drawn(widths[l - 1])) {
      const [a0, a1] = span(l - 1), [b0, b1] = span(l);
      const left = x(l - 1) + (drawn(widths[l - 1]) ? radius : 34), right = x(l) - (drawn(widths[l]) ? radius : 34);
      const m = stats ? stats[l - 1] : null;
      const shape = svgEl("polygon", { points: `${left},${a0} ${right},${b0} ${right},${b1} ${left},${a1}`, "data-layer": l,
        class: `band-edge ${m ? (m.mean >= 0 ? "positive" : "negative") : "unknown"}`,
        "fill-opacity": m ? (0.12 + 0.5 * m.meanAbs / heaviest).toFixed(2) : "0.1" });
      shape.append(svgEl("title", {}, m ? `W${l}: ${m.rows}×${m.cols}, mean ${fmt(m.mean, 3)}, std ${fmt(m.std, 3)}, `
        + `mean |w| ${fmt(m.meanAbs, 3)}, max |w| ${fmt(m.peak, 3)}, ${Math.round(100 * m.positive)}% positive` : `W${l}: no weights yet`));
      svg.append(shape);
      continue;
    }
    const peak = W ? Math.max(...W.flat().map(Math.abs), 1e-12) : 1;
    const labelled = widths[l] * widths[l - 1] <= 16;
    for (let o = 0; o < widths[l]; o++) {
      for (let i = 0; i < widths[l - 1]; i++) {
        const w = W ? W[o][i] : 0;
        const line = svgEl("line", { x1: x(l - 1), y1: y(l - 1, i), x2: x(l), y2: y(l, o), class: `edge ${w >= 0 ? "positive" : "negative"}`,
          "stroke-width": (0.5 + 4 * Math.abs(w) / peak).toFixed(2), "data-layer": l, "data-out": o, "data-in": i });
        line.append(svgEl("title", {}, `W${l}[${o + 1},${i + 1}] = ${fmt(w, 5)}${dW ? `, ∂L/∂W = ${fmt(dW[o][i], 5)}` : ""}`));
        svg.append(line);
        if (dW && labelled) {
          const t = 0.6 + 0.15 * ((o + i) % 2);  // clear of the left unit's z, a and δ
          svg.append(svgEl("text", { x: x(l - 1) + t * 200, y: y(l - 1, i) + t * (y(l, o) - y(l - 1, i)) - 4, class: "dw",
            id: `dw-${l}-${o}-${i}`, "text-anchor": "middle" }, `∂W ${fmt(dW[o][i], 3)}`));
        }
      }
    }
  }
  // units: z, a and δ at this step (the inputs show x); dead ReLU units (z ≤ 0 on the whole batch, or held dead
  // by a diagnosis at this step) marked, and a dead layer named
  const at = trace ? trace.step : state.job.progress.step;
  const diagnosed = widths.map((_, l) => diagnosedDead(state, l, at));
  for (let l = 0; l < widths.length; l++) {
    const layer = l > 0 && trace ? trace.layers[l - 1] : null;
    if (!drawn(widths[l])) {
      band(svg, l, widths[l], trace, layer, weights, chosen, x(l) - 34, 40, 68, inner);
    } else {
      for (let u = 0; u < widths[l]; u++) {
        const dead = (layer && /relu|elu/.test(layer.activation) && layer.Z.every((row) => row[u] <= 0)) || (l > 0 && diagnosed[l].units.has(u));
        const node = svgEl("circle", { cx: x(l), cy: y(l, u), r: radius.toFixed(1), class: `unit${l === 0 ? " input" : ""}${dead ? " dead" : ""}`,
          "data-layer": l, "data-unit": u });
        node.append(svgEl("title", {}, l === 0 ? `input ${u + 1}` : `unit ${u + 1} of layer ${l}${dead ? " (dead: z ≤ 0 on the whole batch)" : ""}`
          + (layer ? `: z ${fmt(layer.Z[sample][u], 4)}, a ${fmt(layer.A[sample][u], 4)}, δ ${fmt(layer.delta[sample][u], 4)}` : "")));
        svg.append(node);
        if (l === 0 && trace && labels) {
          svg.append(svgEl("text", { x: x(l) - 22, y: y(l, u) + 4, "text-anchor": "end", class: "value" },
            `x${subscript(u + 1)} ${fmt(trace.X[sample][u], 3)}`));
        } else if (layer && labels) {
          const lines = [`z ${fmt(layer.Z[sample][u], 4)}`, `a ${fmt(layer.A[sample][u], 4)}`, `δ ${fmt(layer.delta[sample][u], 4)}`];
          lines.forEach((text, k) => svg.append(svgEl("text", { x: x(l) + 22, y: y(l, u) - 10 + 13 * k, class: "value",
            id: `${["z", "a", "delta"][k]}-${l}-${u}` }, text)));
        }
      }
    }
    svg.append(svgEl("text", { x: x(l), y: height - 8, "text-anchor": "middle", class: "layer" },
      l === 0 ? "inputs" : `dense_${l}${trace ? ` (${trace.layers[l - 1].activation})` : ""}`));
    if (l > 0 && diagnosed[l].layer) {
      svg.append(svgEl("text", { x: x(l), y: 26, "text-anchor": "middle", class: "dead-layer", id: `dead-layer-${l}` }, "dead layer"));
    } else if (l > 0 && !drawn(widths[l]) && diagnosed[l].units.size) {
      svg.append(svgEl("text", { x: x(l), y: 26, "text-anchor": "middle", class: "dead-layer" }, `${diagnosed[l].units.size} dead`));
    }
  }
  box.replaceChildren(svg);
  const bands = wide ? ` Layers wider than ${MAX_DRAWN_UNITS} units are bands: a histogram of ${trace ? `their ${{ A: "a", Z: "z", delta: "δ" }[chosen]} over the batch`
    : "their incoming weights"}; the shapes between them are shaded by the weight matrix (hover for its statistics); click a band for its units.` : "";
  $("#network-hint").textContent = (trace ? `z, a and δ of the batch's first sample at step ${trace.step}; edges: W before the update `
    + "(blue positive, red negative, width by size) with ∂L/∂W; dashed units are dead ReLUs."
    : weights ? "Edges: the final weights (blue positive, red negative). No trace was recorded at this step: the table below has "
      + "per-tensor statistics." : "No weights yet: they show once the job has recorded a trace or ended.") + bands;
}

// A layer too wide to draw unit by unit: a histogram of what it holds at this step (its a, z or δ over the
// batch when traced, else its incoming weights), and on click the list of its units.
function band(svg, l, units, trace, layer, weights, chosen, left, top, width, height) {
  const group = svgEl("g", { class: "band-layer", "data-layer": l, tabindex: "0" });
  group.append(svgEl("rect", { x: left, y: top, width, height, class: "band" }));
  let values = [], what = "", rows = [];
  if (l === 0 && trace) {
    values = trace.X.flat();
    what = "inputs x over the batch";
    rows = [...Array(units).keys()].map((u) => `input ${u + 1}: x ${fmt(trace.X[0][u], 4)}`);
  } else if (layer) {
    values = layer[chosen].flat();
    what = `${{ A: "a", Z: "z", delta: "δ" }[chosen]} over the batch at step ${trace.step}`;
    rows = [...Array(units).keys()].map((u) => {
      const dead = /relu|elu/.test(layer.activation) && layer.Z.every((row) => row[u] <= 0);
      return `unit ${u + 1}: z ${fmt(layer.Z[0][u], 4)}, a ${fmt(layer.A[0][u], 4)}, δ ${fmt(layer.delta[0][u], 4)}${dead ? " (dead)" : ""}`;
    });
  } else if (l > 0 && weights) {
    const W = weights[l - 1];
    values = W.flat();
    what = `incoming weights W${l}`;
    rows = W.map((row, u) => `unit ${u + 1}: ‖W${l}[${u + 1},:]‖ ${fmt(Math.sqrt(row.reduce((a, w) => a + w * w, 0)), 4)}`);
  }
  group.append(svgEl("title", {}, values.length ? `layer ${l}: ${units} units; histogram of the ${what} (click for the units)` : `${units} units`));
  const hist = svgEl("g", { class: "band-hist" });
  histogram(hist, values, left + 4, top + 4, width - 8, height - 8);
  group.append(hist);
  // above the band: its width and the histogram's range (lowest value at the top, highest at the bottom)
  const range = values.length ? `, ${fmt(Math.min(...values), 2)} … ${fmt(Math.max(...values), 2)}` : "";
  svg.append(svgEl("text", { x: left + width / 2, y: top - 8, "text-anchor": "middle", class: "layer" }, `${units} units${range}`));
  const list = $("#band-units");
  const show = () => {
    list.hidden = false;
    list.dataset.layer = String(l);
    list.textContent = `Layer ${l} (${what || "nothing recorded yet"}), the first sample:\n${rows.join("\n")}`;
  };
  group.addEventListener("click", show);
  if (list.dataset.layer === String(l)) show();  // an open list follows the step and the choice of a, z or δ
  svg.append(group);
}

function histogram(svg, values, left, top, width, height) {
  if (!values.length) return;
  const bins = 16, low = Math.min(...values), high = Math.max(...values), counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - low) / ((high - low) || 1) * bins))]++;
  const peak = Math.max(...counts);
  counts.forEach((c, k) => {  // bins from the lowest value (top) to the highest (bottom), bar length by count
    const bar = svgEl("rect", { x: left, y: top + (height / bins) * k, width: Math.max(0.5, (width * c) / peak), height: height / bins - 1, class: "bar" });
    bar.append(svgEl("title", {}, `${c} value${c === 1 ? "" : "s"} in ${fmt(low + (k * (high - low)) / bins, 3)} … ${fmt(low + ((k + 1) * (high - low)) / bins, 3)}`));
    svg.append(bar);
  });
}

async function drawCharts(job, query = "") {
  const keys = (await api(`/api/v1/jobs/${job.id}/metrics/keys`)).keys;
  const container = $("#charts");
  chartSlots(container, [...CHART_NAMES, "decision_boundary"]);
  const wanted = CHART_NAMES.filter((name) => keys.some((k) => CHART_KEYS[name].some((prefix) => k.startsWith(prefix))));
  // the log-scale box is the loss chart's; the others keep their own axes
  const own = (name) => (name === "loss" ? query : query.replace("&scale=log", ""));
  await Promise.all(wanted.map((name) => chartInto(container, `/api/v1/jobs/${job.id}/charts/${name}?${own(name)}`, name).catch(() => null)));
}

function live(state) {
  let last = 0, pending = null;
  const redraw = () => { pending = null; last = Date.now(); drawCharts(state.job, state.chartQuery()); };
  follow(`/api/v1/jobs/${state.job.id}/events`, async (event, data) => {
    if (event === "diagnosis") {
      await loadDiagnoses(state);
      return;
    }
    if (event === "progress") {
      state.job.progress = { ...state.job.progress, step: data.step, total_steps: data.total_steps, loss: data.loss };
      const cell = $("#progress-steps");  // one source for the step: the header and the table say the same
      if (cell) cell.textContent = progressText(state.job.progress);
      const epoch = data.val_loss === null ? "" : `, epoch ${data.epoch}/${data.epochs}: val loss ${fmt(data.val_loss)}`;
      say(`training: step ${data.step.toLocaleString("en")}/${data.total_steps.toLocaleString("en")}, loss ${fmt(data.loss)}${epoch}`);
      if (!pending) pending = setTimeout(redraw, Math.max(0, 1000 - (Date.now() - last)));
    } else if (event === "end") {
      state.job = { ...data, spec: state.job.spec };
      overview(state.job);
      await loadSteps(state);
      await Promise.all([drawCharts(state.job, state.chartQuery()), showStep(state)]);
    }
  });
}

// -- a sweep ------------------------------------------------------------------------------------
async function sweepPage() {
  let sweep;
  try {
    sweep = await api(`/api/v1/sweeps/${ident}`);
  } catch (error) {
    say(error.status === 404 ? `404: no sweep ${ident}` : error.message, true);
    ready();
    return;
  }
  $("#title").textContent = `Sweep ${sweep.id}${sweep.name ? `: ${sweep.name}` : ""}`;
  const states = Object.entries(sweep.progress.by_state).map(([k, n]) => `${n} ${k}`).join(", ") || "no jobs yet";
  const runs = sweep.jobs.map((j) => j.mlflow.run_id).filter(Boolean);
  const overviewBox = el("p", {}, `${sweep.status}: ${states}; ${sweep.progress.jobs} of ${sweep.progress.planned_jobs} jobs (`,
    `${sweep.strategy}, ${sweep.progress.seeds} seed${sweep.progress.seeds === 1 ? "" : "s"} a point), objective `,
    `${sweep.objective.goal} ${sweep.objective.metric}`);
  const first = sweep.jobs.find((j) => j.mlflow.run_url);
  if (first && runs.length) {
    const base = first.mlflow.run_url.split("/#/")[0];
    const compare = `${base}/#/compare-runs?runs=${encodeURIComponent(JSON.stringify(runs))}`
      + `&experiments=${encodeURIComponent(JSON.stringify([first.mlflow.experiment_id]))}`;
    overviewBox.append(" · ", el("a", { href: compare, id: "mlflow-compare" }, "compare these runs in MLflow"));
  }
  overviewBox.append(" · ", el("a", { href: `/?sweep_id=${sweep.id}` }, "its jobs"));
  $("#overview").replaceChildren(overviewBox);
  const choose = sweepPage.chooser || (sweepPage.chooser = chooser($("#compare"), $("#chosen")));
  const paths = Object.keys(sweep.leaderboard[0]?.params || {});
  const rank = new Map(sweep.leaderboard.map((row, k) => [row.trial, k + 1]));
  const shown = (v) => (typeof v === "number" ? fmt(v) : JSON.stringify(v).replace(/^"|"$/g, ""));
  const byJob = new Map(sweep.jobs.map((j) => [j.id, j.diagnoses]));
  const diagnosesOf = (row) => {  // per point: how many of its seeds had each kind
    const counts = {};
    for (const id of row.jobs) for (const kind of byJob.get(id) || []) counts[kind] = (counts[kind] || 0) + 1;
    return { kinds: Object.keys(counts), counts };
  };
  sortableTable($("#leaderboard"), [
    { title: "rank", value: (row) => rank.get(row.trial) },
    ...paths.map((path) => ({ title: path, value: (row) => row.params[path], cell: (row) => shown(row.params[path]) })),
    { title: "objective (mean ± std)", value: (row) => row.objective_mean,
      cell: (row) => (row.objective_mean === null ? "–" : `${fmt(row.objective_mean)} ± ${fmt(row.objective_std, 2)}`) },
    { title: "diverged", value: (row) => row.diverged, class: "diverged", cell: (row) => String(row.diverged || "") },
    { title: "diagnoses", value: (row) => diagnosesOf(row).kinds.join(" "), cell: (row) => badges(diagnosesOf(row).kinds, diagnosesOf(row).counts) },
    { title: "jobs", cell: (row) => row.jobs.flatMap((id) => [el("label", { class: "job-pick" }, choose.box(id), el("a", { href: `/jobs/${id}` }, id)), " "]) },
  ], sweep.leaderboard, (row) => ({ "data-trial": row.trial }));
  const ended = sweep.jobs.filter((j) => !["queued", "running"].includes(j.status)).length;
  if (ended) {
    const objective = $("#objective");
    chartSlots(objective, paths);
    await Promise.all(paths.map((param) => chartInto(objective, `/api/v1/sweeps/${sweep.id}/charts/objective?param=${encodeURIComponent(param)}`,
      param).catch(() => null)));
    await chartInto($("#parallel"), `/api/v1/sweeps/${sweep.id}/charts/parallel`, "parallel").catch(() => null);
    // sweeps whose jobs record curvature (asked of one ended job): final sharpness against η, under the 2/η curve
    const first = sweep.jobs.find((j) => !["queued", "running"].includes(j.status));
    const { keys } = await api(`/api/v1/jobs/${first.id}/metrics/keys`);
    if (keys.includes("sharpness")) {
      const sharp = await chartInto($("#sharpness"), `/api/v1/sweeps/${sweep.id}/charts/sharpness`, "sharpness").then(() => true, () => false);
      $("#sharpness-section").hidden = !sharp;
    }
  }
  if (sweep.importance) {
    const peak = Math.max(...Object.values(sweep.importance), 1e-12);
    $("#importance").replaceChildren(...Object.entries(sweep.importance).map(([p, v]) => el("div", { class: "importance" },
      el("span", {}, p), el("span", { class: "bar", style: `width:${(200 * v) / peak}px` }), ` ${fmt(v, 3)}`)));
  } else {
    $("#importance").textContent = sweep.status === "running" ? "(once the sweep has finished)" : "(not enough finished points)";
  }
  ready();
  if (sweep.status === "running") setTimeout(sweepPage, 2000);
}

// -- comparison ---------------------------------------------------------------------------------
async function comparePage() {
  const ids = (new URLSearchParams(location.search).get("jobs") || "").split(",").filter(Boolean);
  if (ids.length < 2) {
    say("name two to ten jobs: /compare?jobs=3,4,7", true);
    ready();
    return;
  }
  const jobs = await Promise.all(ids.map((id) => api(`/api/v1/jobs/${id}`)));
  $("#title").textContent = `Compare jobs ${ids.join(", ")}`;
  const keys = (await api(`/api/v1/jobs/${ids[0]}/metrics/keys`)).keys;
  const select = $("#key");
  select.replaceChildren(...keys.map((k) => el("option", { value: k }, k)));
  select.value = keys.includes("loss") ? "loss" : keys[0];
  let query = () => "";
  const overlay = () => chartInto($("#overlay"), `/api/v1/compare/chart?jobs=${ids.join(",")}&key=${encodeURIComponent(select.value)}`
    + `&${query()}`, "overlay").catch((error) => say(error.message, true));
  query = chartControls(overlay, false);
  select.onchange = overlay;
  await overlay();
  const diffs = await Promise.all(ids.slice(1).map((id) => api(`/api/v1/jobs/${ids[0]}/diff/${id}`).catch((error) => ({ error, b: id }))));
  const fields = [...new Set(diffs.flatMap((d) => Object.keys(d.spec_differences || {})))].sort();
  $("#differences thead tr").replaceChildren(el("th", {}, "field"), ...jobs.map((j) => el("th", {}, `job ${j.id}`)));
  $("#differences tbody").replaceChildren(...fields.map((field) => el("tr", {}, el("td", {}, field),
    el("td", {}, JSON.stringify(diffs.find((d) => d.spec_differences && field in d.spec_differences).spec_differences[field].a)),
    ...diffs.map((d) => el("td", {}, d.spec_differences && field in d.spec_differences
      ? JSON.stringify(d.spec_differences[field].b) : "same")))));
  const branch = (d) => d.branch ? ` (they are job ${d.branch.job}'s run, bit for bit, up to step ${d.branch.step}: a fork)` : "";
  $("#parting").replaceChildren(...diffs.map((d) => el("li", { class: d.branch ? "forked" : "" },
    d.error ? `job ${ids[0]} and job ${d.b}: ${d.error.message}`
      : d.first_difference === null ? `jobs ${d.a} and ${d.b} agree on all ${d.steps_compared} steps compared${branch(d)}`
        : `jobs ${d.a} and ${d.b} part at step ${d.first_difference.step} (${d.first_difference.key}: ${fmt(d.first_difference.a)} `
          + `vs ${fmt(d.first_difference.b)})${branch(d)}`)));
  ready();
}

// -- datasets: each with its columns and the jobs that used it ------------------------------------------
async function datasetsPage() {
  const found = [];
  let next = "/api/v1/datasets?limit=200";
  while (next) {
    const pageOf = await api(next);
    found.push(...pageOf.datasets);
    next = pageOf.next;
  }
  const lineages = await Promise.all(found.map((d) => api(d.links.jobs)));
  $("#datasets tbody").replaceChildren(...found.map((d, i) => el("tr", { id: `dataset-${d.id}` },
    el("td", {}, String(d.id)), el("td", {}, d.name), el("td", {}, d.rows.toLocaleString()),
    el("td", { class: "columns" }, d.columns.map((c) => `${c.name} (${c.type})`).join(", ")),
    el("td", {}, d.bytes.toLocaleString()), el("td", { title: d.digest }, d.digest.slice(0, 12)), el("td", {}, when(d.created_at)),
    el("td", {}, ...lineages[i].jobs.flatMap((j, k) => [k ? ", " : "", el("a", { href: `/jobs/${j.id}` }, `job ${j.id}`)]),
      ...lineages[i].sweeps.map((id) => el("span", {}, " · ", el("a", { href: `/sweeps/${id}` }, `sweep ${id}`)))))));
  if (!found.length) say("no datasets yet: bplab datasets upload FILE");
  ready();
}

const PAGES = { jobs: jobsPage, job: jobPage, sweeps: sweepsPage, sweep: sweepPage, compare: comparePage, datasets: datasetsPage };
PAGES[page]().catch((error) => { say(error.message, true); ready(); });
