"""The pages: jobs (`/`), a job (`/jobs/{id}`), sweeps (`/sweeps`), a sweep (`/sweeps/{id}`), datasets
(`/datasets`) and a comparison (`/compare?jobs=3,4,7`). Each is a small HTML shell and one script (static/pages.js) that reads the
typed API with the caller's token (asked for once, kept in the browser) and draws what it reads; the
charts are SVG drawn on the server (routes/charts.py). Nothing is fetched from elsewhere."""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, url_for

bp = Blueprint("pages", __name__)  # served to anyone (auth.PAGE_PATHS): the data behind them asks for a token

SHELL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Backprop Lab</title><link rel="icon" href="data:,"><link rel="stylesheet" href="{css}"></head>
<body data-page="{page}" data-id="{ident}">
<header><a href="{home}" class="brand">Backprop Lab</a> <nav><a href="{home}">jobs</a> <a href="/sweeps">sweeps</a>
<a href="/datasets">datasets</a>
<a href="{docs}">API</a></nav>
<span id="who"></span></header>
<dialog id="login"><form method="dialog" id="login-form"><p>This service needs an API token (an operator creates one with
<code>flask --app services.api tokens create NAME</code>).</p><label>Token <input id="token" type="password" autocomplete="off" required></label>
<button id="sign-in" type="submit">Sign in</button></form></dialog>
<main><h1 id="title">{title}</h1><p id="status" role="status"></p>{body}</main>
<script src="{js}"></script></body></html>"""

JOBS = """<form id="filters"><label>status <select name="status"><option value="">any</option>
<option>queued</option><option>running</option><option>succeeded</option><option>diverged</option><option>failed</option>
<option>cancelled</option></select></label> <label>experiment <input name="experiment" size="12"></label>
<label>tag <input name="tag" size="10" placeholder="key or key:value"></label> <label>sweep <input name="sweep_id" size="4"></label>
<label>name <input name="q" size="12" placeholder="text in the name"></label> <button type="submit">filter</button></form>
<p class="controls"><button id="compare" type="button" disabled>compare chosen</button> <span class="hint" id="chosen">tick 2 to 10
jobs to compare them</span></p>
<table id="jobs" class="sortable"><thead></thead><tbody></tbody></table>
<p class="hint">Open a job for its network, trace and charts; click a column's title to sort by it. A sweep's jobs (filter by
sweep) show its swept parameters as columns.</p>"""

SWEEPS = """<table id="sweeps" class="sortable"><thead></thead><tbody></tbody></table>
<p class="hint">Start one with <code>bplab sweep examples/sweep.yaml</code> or <code>POST /api/v1/sweeps</code>.</p>"""

JOB = """<section id="overview"></section>
<section id="diagnoses-section" hidden><h2>Diagnoses</h2><ul id="diagnoses"></ul></section>
<section><h2>The network</h2><div class="controls"><button id="play" type="button">▶ play</button>
<input id="step" type="range" min="0" max="0" value="0"> <span id="step-label"></span>
<label id="every-step-choice" hidden><input id="every-step" type="checkbox"> every step (one not recorded is replayed on
request)</label>
<label id="band-choice" hidden>wide layers show <select id="band-values"><option value="A">a</option><option value="Z">z</option>
<option value="delta">δ</option></select></label> <span id="fork-controls" hidden><button id="fork" type="button">fork from this
step</button> with <input id="fork-set" size="28" value='{"optimizer.lr": 0.05}' title="the fields to change, by dotted path (JSON)">
</span></div>
<div id="network"></div><p class="hint" id="network-hint"></p><pre id="band-units" hidden></pre><div id="tensor-stats"></div></section>
<section><h2>Backward pass at this step</h2><pre id="trace">(no trace recorded)</pre></section>
<section><h2>Charts</h2><div class="controls"><label>smoothing <input id="smoothing" type="range" min="0" max="0.99"
step="0.01" value="0.9"></label> <output id="smoothing-value">0.9</output> <label><input id="log-loss" type="checkbox"> loss on a log
scale</label></div><div id="charts" class="charts"></div><p class="hint">Step series are smoothed as TensorBoard smooths them
(an exponential moving average, debiased at the start), the raw series faint behind; epoch-level losses are drawn on top, as
they are.</p></section>
<section id="landscape-section" hidden><h2>Loss landscape</h2><div class="controls"><label>after <input id="landscape-step"
type="number" min="0" value="0"> steps</label> <label>directions <select id="landscape-directions"><option value="top">the
Hessian's two sharpest</option><option value="random">two random, filter-normalised</option></select></label>
<button id="landscape-draw" type="button">draw</button> <button id="landscape-here" type="button">at the slider's step</button></div>
<div id="landscape" class="charts"></div><p class="hint" id="landscape-hint">Computed on request by a worker, which replays the
job to the step (training is deterministic), then kept.</p></section>
<section><h2>Spec</h2><pre id="spec"></pre></section>"""

SWEEP = """<section id="overview"></section>
<section><h2>Leaderboard</h2><p class="controls"><button id="compare" type="button" disabled>compare chosen</button>
<span class="hint" id="chosen">tick 2 to 10 jobs to compare them</span></p>
<table id="leaderboard" class="sortable"><thead></thead><tbody></tbody></table></section>
<section><h2>Objective against each parameter</h2><div id="objective" class="charts"></div></section>
<section><h2>Parallel coordinates</h2><div id="parallel"></div></section>
<section id="sharpness-section" hidden><h2>Sharpness against the learning rate</h2><div id="sharpness"></div><p class="hint">Each
job's last recorded λmax (the loss surface's sharpest curvature, <code>record.curvature</code>) against its η; blue trained, orange
diverged. Gradient descent overshoots where λmax·η &gt; 2, above the dashed 2/η curve; full-batch training climbs to it and hovers
there (the edge of stability).</p></section>
<section><h2>Importance</h2><div id="importance"></div></section>"""

DATASETS = """<section><table id="datasets"><thead><tr><th>id</th><th>name</th><th>rows</th><th>columns</th><th>bytes</th>
<th>digest</th><th>created</th><th>used by</th></tr></thead><tbody></tbody></table>
<p class="hint">Upload with <code>bplab datasets upload FILE</code> or <code>POST /api/v1/datasets</code>; a job names one with
<code>"data": {"dataset": ID, "target": "COLUMN"}</code>.</p></section>"""

COMPARE = """<section><div class="controls"><label>metric <select id="key"></select></label> <label>smoothing <input id="smoothing"
type="range" min="0" max="0.99" step="0.01" value="0"></label> <output id="smoothing-value">0</output> <label><input id="log-loss"
type="checkbox"> log scale</label></div><div id="overlay"></div></section>
<section><h2>How the specs differ</h2><table id="differences"><thead><tr><th>field</th></tr></thead><tbody></tbody></table></section>
<section><h2>Where the runs part</h2><ul id="parting"></ul></section>"""


def _page(page: str, title: str, body: str, ident: int | str = "") -> Response:
    html = SHELL.format(title=escape(title), page=page, ident=ident, body=body, home=url_for("pages.jobs_page"), docs="/docs",
                        css=url_for("static", filename="pages.css"), js=url_for("static", filename="pages.js"))
    return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})


@bp.get("/")
def jobs_page():
    """The jobs as a table, filtered; live progress of running ones."""
    return _page("jobs", "Jobs", JOBS)


@bp.get("/jobs/<int(min=1, max=2147483647):job_id>")
def job_page(job_id: int):
    """One job: its network at a recorded step, the backward-pass trace, charts that follow training live."""
    return _page("job", f"Job {job_id}", JOB, job_id)


@bp.get("/sweeps")
def sweeps_page():
    """The sweeps, newest first, with their progress and objective."""
    return _page("sweeps", "Sweeps", SWEEPS)


@bp.get("/sweeps/<int(min=1, max=2147483647):sweep_id>")
def sweep_page(sweep_id: int):
    """One sweep: progress, leaderboard, the objective against each parameter, parallel coordinates, importance."""
    return _page("sweep", f"Sweep {sweep_id}", SWEEP, sweep_id)


@bp.get("/datasets")
def datasets_page():
    """The owner's datasets with their columns and the jobs that used them."""
    return _page("datasets", "Datasets", DATASETS)


@bp.get("/compare")
def compare_page():
    """Several jobs side by side: curves overlaid, how their specs differ, where they part."""
    return _page("compare", "Compare runs", COMPARE)
