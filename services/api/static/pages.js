// Backprop Lab's pages: read the typed API (/api/v1) with the caller's token and draw what it says.
// No framework, nothing fetched from elsewhere; charts are SVG the server draws (routes/charts.py).
"use strict";

const TOKEN = "bplab-token";
const page = document.body.dataset.page;
const ident = document.body.dataset.id;
const $ = (selector) => document.querySelector(selector);

// -- the API ------------------------------------------------------------------------------------
async function api(path, accept = "application/json") {
  const headers = { Accept: accept };
  const token = localStorage.getItem(TOKEN);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { headers });
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

async function chartInto(container, path, name) {
  const box = el("figure", { class: "chart", "data-chart": name });
  box.innerHTML = await api(path, "image/svg+xml");
  const old = container.querySelector(`[data-chart="${name}"]`);
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
  async function refresh() {
    const query = new URLSearchParams(location.search);
    query.set("limit", "200");
    const list = await api(`/api/v1/jobs?${query}`);
    const body = $("#jobs tbody");
    body.replaceChildren(...list.jobs.map(jobRow));
    say(`${list.jobs.length} job${list.jobs.length === 1 ? "" : "s"}${list.next_cursor ? " (the newest 200)" : ""}`);
    ready();
    if (list.jobs.some((job) => job.status === "queued" || job.status === "running" || job.mlflow.state === "pending")) setTimeout(refresh, 2000);
  }
  await refresh();
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

function jobRow(job) {
  const s = job.summary || {};
  const p = job.progress;
  const bar = el("progress", { max: p.total_steps || 1, value: p.step });
  const links = el("td", {}, el("a", { href: `/api/v1/jobs/${job.id}` }, "REST"));
  if (job.mlflow.run_url) links.append(" ", el("a", { href: job.mlflow.run_url }, "MLflow"));
  const lag = mirrorLag(job);
  if (lag && job.mlflow.state !== "synced") links.append(" ", el("span", { class: "mirror", title: lag }, lag.replace("MLflow: ", "")));
  return el("tr", { "data-job": job.id, class: job.status },
    el("td", {}, el("a", { href: `/jobs/${job.id}` }, job.id)), el("td", {}, job.name || ""), el("td", {}, job.experiment),
    el("td", { class: "state" }, job.status), el("td", {}, bar, ` ${p.step}/${p.total_steps}`),
    el("td", {}, fmt(s.final_loss)), el("td", {}, fmt(s.best_loss)), el("td", {}, fmt(s.model_val_loss ?? s.final_val_loss)),
    el("td", {}, fmt(s.model_val_accuracy ?? s.final_val_accuracy, 3)),
    el("td", {}, s.duration_seconds === undefined ? "–" : `${s.duration_seconds.toFixed(2)} s`), el("td", {}, when(job.created_at)), links);
}

// -- a job --------------------------------------------------------------------------------------
const CHART_NAMES = ["loss", "gradient_norms", "update_ratios", "dead_units", "vanishing_ratio"];
const CHART_KEYS = { loss: ["loss"], gradient_norms: ["grad_norm/"], update_ratios: ["update_ratio/"], dead_units: ["dead_fraction/"],
                     vanishing_ratio: ["vanishing_ratio"] };
const MAX_DRAWN_UNITS = 32;

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
  await loadSteps(state);
  await Promise.all([drawCharts(job), showStep(state)]);
  ready();
  if (job.status === "queued" || job.status === "running") live(state);
  followMirror(job.id);
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
  const rows = [["status", job.status], ["progress", `${job.progress.step}/${job.progress.total_steps} steps`],
    ["experiment", job.experiment], ["created", when(job.created_at)]];
  for (const [key, value] of Object.entries(s)) rows.push([key, typeof value === "number" ? fmt(value, 6) : value]);
  const table = el("table", { id: "summary" }, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
  box.replaceChildren(links, table);
  if (job.error) box.append(el("pre", { class: "error", id: "error" }, JSON.stringify(job.error, null, 2)));
  $("#title").textContent = `Job ${job.id}${job.name ? `: ${job.name}` : ""}`;
  $("#csv").addEventListener("click", (event) => {
    event.preventDefault();
    download(`/api/v1/jobs/${job.id}/metrics`, "text/csv", `job-${job.id}-metrics.csv`).catch((error) => say(error.message));
  });
  say(job.status === "running" ? "training: the charts follow it live" : "");
}

async function loadSteps(state) {
  const recorded = await api(`/api/v1/jobs/${state.job.id}/recorded-steps`);
  state.traced = recorded.trace.length > 0;
  state.steps = state.traced ? recorded.trace : recorded.gradients;
  if (!state.steps.length) {  // only summaries: per-tensor statistics at the recorded steps
    const loss = (await api(`/api/v1/jobs/${state.job.id}/metrics?keys=loss&max_points=200`)).loss;
    state.steps = loss ? loss.steps : [];
  }
  const slider = $("#step");
  slider.max = Math.max(0, state.steps.length - 1);
  if (state.chosen === null || !state.steps.includes(state.chosen)) slider.value = 0;
  slider.oninput = () => showStep(state, state.steps[Number(slider.value)]);
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
    let table;
    [trace, table] = await Promise.all([api(`/api/v1/jobs/${job.id}/trace?step=${step}`),
      api(`/api/v1/jobs/${job.id}/trace?step=${step}`, "text/plain")]);
    $("#trace").textContent = table;
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
  await chartInto($("#charts"), `/api/v1/jobs/${job.id}/charts/decision_boundary${query}`, "decision_boundary");
}

function drawNetwork(state, trace, weights, gradients) {
  const widths = trace ? [trace.X[0].length, ...trace.layers.map((l) => l.W.length)] : state.widths;
  const box = $("#network");
  const width = 220 * widths.length, height = 70 + 62 * Math.min(MAX_DRAWN_UNITS, Math.max(...widths));
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "network-svg", role: "img" });
  const x = (layer) => 90 + 200 * layer;
  const y = (layer, unit) => 40 + (height - 70) * ((unit + 0.5) / Math.min(widths[layer], MAX_DRAWN_UNITS));
  const drawn = (n) => n <= MAX_DRAWN_UNITS;
  const sample = 0;  // the batch's first sample (the post's example has one)
  // edges, coloured by the weight's sign and sized by its size, with ∂L/∂W where there is room
  for (let l = 1; l < widths.length; l++) {
    const W = weights ? weights[l - 1] : null;
    const dW = trace ? trace.layers[l - 1].dW : gradients ? gradients[`dense_${l}.weight`] : null;
    if (!drawn(widths[l]) || !drawn(widths[l - 1])) {
      svg.append(svgEl("rect", { x: x(l - 1) + 20, y: 40, width: 160, height: height - 70, class: "band" }));
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
  // units: z, a and δ at this step (the inputs show x); dead ReLU units (z ≤ 0 on the whole batch) marked
  for (let l = 0; l < widths.length; l++) {
    if (!drawn(widths[l])) {
      const values = trace ? trace.layers[l - 1].A.flat() : [];
      svg.append(svgEl("text", { x: x(l), y: 30, "text-anchor": "middle" }, `${widths[l]} units`));
      histogram(svg, values, x(l) - 30, 40, 60, height - 70);
      continue;
    }
    for (let u = 0; u < widths[l]; u++) {
      const layer = l > 0 && trace ? trace.layers[l - 1] : null;
      const dead = layer && /relu|elu/.test(layer.activation) && layer.Z.every((row) => row[u] <= 0);
      const node = svgEl("circle", { cx: x(l), cy: y(l, u), r: 16, class: `unit${l === 0 ? " input" : ""}${dead ? " dead" : ""}`,
        "data-layer": l, "data-unit": u });
      node.append(svgEl("title", {}, l === 0 ? `input ${u + 1}` : `unit ${u + 1} of layer ${l}${dead ? " (dead: z ≤ 0 on the whole batch)" : ""}`));
      svg.append(node);
      if (l === 0 && trace) {
        svg.append(svgEl("text", { x: x(l) - 22, y: y(l, u) + 4, "text-anchor": "end", class: "value" }, `x ${fmt(trace.X[sample][u], 3)}`));
      } else if (layer) {
        const lines = [`z ${fmt(layer.Z[sample][u], 4)}`, `a ${fmt(layer.A[sample][u], 4)}`, `δ ${fmt(layer.delta[sample][u], 4)}`];
        lines.forEach((text, k) => svg.append(svgEl("text", { x: x(l) + 22, y: y(l, u) - 10 + 13 * k, class: "value",
          id: `${["z", "a", "delta"][k]}-${l}-${u}` }, text)));
      }
    }
    svg.append(svgEl("text", { x: x(l), y: height - 8, "text-anchor": "middle", class: "layer" },
      l === 0 ? "inputs" : `dense_${l}${trace ? ` (${trace.layers[l - 1].activation})` : ""}`));
  }
  box.replaceChildren(svg);
  $("#network-hint").textContent = trace ? `z, a and δ of the batch's first sample at step ${trace.step}; edges: W before the update `
    + "(blue positive, red negative, width by size) with ∂L/∂W; dashed units are dead ReLUs."
    : weights ? "Edges: the final weights (blue positive, red negative). No trace was recorded at this step: the table below has "
      + "per-tensor statistics." : "No weights yet: they show once the job has recorded a trace or ended.";
}

function histogram(svg, values, left, top, width, height) {
  if (!values.length) return;
  const bins = 12, low = Math.min(...values), high = Math.max(...values), counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - low) / ((high - low) || 1) * bins))]++;
  const peak = Math.max(...counts);
  counts.forEach((c, k) => svg.append(svgEl("rect", { x: left, y: top + (height / bins) * k, width: (width * c) / peak,
    height: height / bins - 1, class: "bar" })));
}

async function drawCharts(job) {
  const keys = (await api(`/api/v1/jobs/${job.id}/metrics/keys`)).keys;
  const container = $("#charts");
  const wanted = CHART_NAMES.filter((name) => keys.some((k) => CHART_KEYS[name].some((prefix) => k.startsWith(prefix))));
  await Promise.all(wanted.map((name) => chartInto(container, `/api/v1/jobs/${job.id}/charts/${name}`, name).catch(() => null)));
}

function live(state) {
  let last = 0, pending = null;
  const redraw = () => { pending = null; last = Date.now(); drawCharts(state.job); };
  follow(`/api/v1/jobs/${state.job.id}/events`, async (event, data) => {
    if (event === "progress") {
      state.job.progress = { ...state.job.progress, step: data.step, total_steps: data.total_steps, loss: data.loss };
      const epoch = data.val_loss === null ? "" : `, epoch ${data.epoch}/${data.epochs}: val loss ${fmt(data.val_loss)}`;
      say(`training: step ${data.step}/${data.total_steps}, loss ${fmt(data.loss)}${epoch}`);
      if (!pending) pending = setTimeout(redraw, Math.max(0, 1000 - (Date.now() - last)));
    } else if (event === "end") {
      state.job = { ...data, spec: state.job.spec };
      overview(state.job);
      await loadSteps(state);
      await Promise.all([drawCharts(state.job), showStep(state)]);
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
  $("#leaderboard tbody").replaceChildren(...sweep.leaderboard.map((row, k) => el("tr", { "data-trial": row.trial },
    el("td", {}, k + 1), el("td", {}, Object.entries(row.params).map(([p, v]) => `${p}=${JSON.stringify(v)}`).join(" ")),
    el("td", {}, row.objective_mean === null ? "–" : `${fmt(row.objective_mean)} ± ${fmt(row.objective_std, 2)}`),
    el("td", { class: row.diverged ? "diverged" : "" }, row.diverged),
    el("td", {}, ...row.jobs.flatMap((id) => [el("a", { href: `/jobs/${id}` }, id), " "])))));
  const ended = sweep.jobs.filter((j) => j.summary).length;
  if (ended) {
    const objective = $("#objective");
    for (const param of Object.keys(sweep.leaderboard[0]?.params || {})) {
      const numeric = sweep.leaderboard.some((row) => typeof row.params[param] === "number");
      if (numeric) await chartInto(objective, `/api/v1/sweeps/${sweep.id}/charts/objective?param=${encodeURIComponent(param)}`, param).catch(() => null);
    }
    await chartInto($("#parallel"), `/api/v1/sweeps/${sweep.id}/charts/parallel`, "parallel").catch(() => null);
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
  const overlay = () => chartInto($("#overlay"), `/api/v1/compare/chart?jobs=${ids.join(",")}&key=${encodeURIComponent(select.value)}`,
    "overlay").catch((error) => say(error.message, true));
  select.onchange = overlay;
  await overlay();
  const diffs = await Promise.all(ids.slice(1).map((id) => api(`/api/v1/jobs/${ids[0]}/diff/${id}`).catch((error) => ({ error, b: id }))));
  const fields = [...new Set(diffs.flatMap((d) => Object.keys(d.spec_differences || {})))].sort();
  $("#differences thead tr").replaceChildren(el("th", {}, "field"), ...jobs.map((j) => el("th", {}, `job ${j.id}`)));
  $("#differences tbody").replaceChildren(...fields.map((field) => el("tr", {}, el("td", {}, field),
    el("td", {}, JSON.stringify(diffs.find((d) => d.spec_differences && field in d.spec_differences).spec_differences[field].a)),
    ...diffs.map((d) => el("td", {}, d.spec_differences && field in d.spec_differences
      ? JSON.stringify(d.spec_differences[field].b) : "same")))));
  $("#parting").replaceChildren(...diffs.map((d) => el("li", {}, d.error ? `job ${ids[0]} and job ${d.b}: ${d.error.message}`
    : d.first_difference === null ? `jobs ${d.a} and ${d.b} agree on all ${d.steps_compared} steps compared`
      : `jobs ${d.a} and ${d.b} part at step ${d.first_difference.step} (${d.first_difference.key}: ${fmt(d.first_difference.a)} `
        + `vs ${fmt(d.first_difference.b)})`)));
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

const PAGES = { jobs: jobsPage, job: jobPage, sweep: sweepPage, compare: comparePage, datasets: datasetsPage };
PAGES[page]().catch((error) => { say(error.message, true); ready(); });
