"""Charts as SVG drawn on the server (services/charts/), for the pages: a job's curves and decision
boundary, a sweep's objective against each swept parameter and its parallel coordinates, several
jobs' curves overlaid; and the steps a job recorded in full."""

from __future__ import annotations

import html
import math
import re

import numpy as np
from flask import Blueprint, Response, request

from services.charts import job as job_charts
from services.charts import svg as charts
from services.datasets.use import DatasetGone, problem_for
from services.mlflow.run_params import log_scale_params, param_name
from services.store import metrics, step_arrays
from services.store.models import Job as JobRow
from services.sweeps.leaderboard import objective_value

from ..errors import ApiError
from ..negotiation import wants
from ..openapi import operation
from ..owned import job_or_404, sweep_or_404
from ..request_session import db
from ..schemas.charts import Chart, ChartName, ChartQuery, CompareQuery, ObjectiveQuery, RecordedSteps
from ..schemas.common import NoQuery
from .jobs import JOB_ID
from .sweeps import SWEEP_ID, sweep_jobs

bp = Blueprint("charts", __name__, url_prefix="/api/v1")
SVG = {"image/svg+xml": "the chart itself (with `Accept: image/svg+xml`)"}


def _svg(text: str | None, what: str):
    """The chart as SVG (`Accept: image/svg+xml`, as the pages ask) or as JSON holding it."""
    if text is None:
        raise ApiError("not-recorded", f"nothing to draw: {what}")
    if wants("application/json", "image/svg+xml") == "image/svg+xml":
        return Response(text, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})
    title = re.search(r'font-size="13">([^<]*)</text>', text)
    return Chart(title=html.unescape(title.group(1)) if title else "", svg=text)


@bp.get(f"/jobs/{JOB_ID}/charts/<name>")
@operation("charts", ok=Chart, query=ChartQuery, problems=("not-found", "not-recorded", "no-model", "unusable-model"), media=SVG)
def job_chart(job_id: int, name: str):
    """One of a job's charts: `loss` (with train and validation loss), `gradient_norms`, `update_ratios`,
    `dead_units`, `vanishing_ratio` (downsampled to `max_points` a line), or `decision_boundary` (2-D inputs;
    the final model, or the weights of a traced `step`)."""
    job = job_or_404(job_id)
    query: ChartQuery = request.context.query
    if name not in ChartName.__args__:
        raise ApiError("not-found", f"no chart {name!r}: the charts are {', '.join(ChartName.__args__)}")
    if name == "decision_boundary":
        return _svg(_boundary(job, query.step), "the decision boundary needs 2-D inputs")
    keys = job_charts.keys_of(name, metrics.keys(db(), job_id))
    series = {k: metrics.downsample(s, v, query.max_points) for k, (s, v) in metrics.read(db(), job_id, keys).items()} if keys else {}
    return _svg(job_charts.chart(name, series), f"job {job_id} recorded no points for {name}")


def _boundary(job: JobRow, step: int | None) -> str | None:
    try:
        problem = problem_for(db(), job.spec)
    except DatasetGone:
        raise ApiError("not-recorded", f"job {job.id}'s dataset was deleted: its rows cannot be drawn") from None
    if problem.X_train.shape[1] != 2:
        return None
    if step is None:
        if job.model is None:
            raise ApiError("no-model", f"job {job.id} has no final model yet; ask for a traced step", status_now=job.status.value)
        _usable(job.id, job.model)
        return job_charts.decision_boundary(problem, job.model, "Decision boundary (final model)")
    data = step_arrays.read(db(), job.id, "trace", step)
    if data is None:
        raise ApiError("not-recorded", f"no trace at step {step}: the weights of a step are in its trace", field="step",
                       recorded_steps=step_arrays.steps(db(), job.id, "trace")[:1000])
    layers = step_arrays.decode_trace(data)["layers"]
    model = {"weights": [layer["W"] for layer in layers], "biases": [layer["b"] for layer in layers]}
    _usable(job.id, model)
    return job_charts.decision_boundary(problem, model, f"Decision boundary at step {step} (before its update)")


def _usable(job_id: int, model: dict) -> None:
    if not all(np.isfinite(np.asarray(w, dtype=float)).all() for w in model["weights"] + model["biases"]):
        raise ApiError("unusable-model", f"job {job_id}'s weights are not finite: there is no decision to draw")


@bp.get(f"/jobs/{JOB_ID}/recorded-steps")
@operation("recorded", ok=RecordedSteps, query=NoQuery, problems=("not-found",))
def recorded_steps(job_id: int):
    """The steps whose full gradients and traces were recorded (the job page's step slider)."""
    job_or_404(job_id)
    return RecordedSteps(gradients=step_arrays.steps(db(), job_id, "gradients"), trace=step_arrays.steps(db(), job_id, "trace"))


@bp.get(f"/sweeps/{SWEEP_ID}/charts/objective")
@operation("charts", ok=Chart, query=ObjectiveQuery, problems=("not-found", "not-recorded"), media=SVG)
def sweep_objective(sweep_id: int):
    """The objective of each ended job against one swept parameter (on a log10 axis when the sweep searches it on a log scale)."""
    sweep = sweep_or_404(sweep_id)
    param = request.context.query.param
    if param not in sweep.request["space"]:
        raise ApiError("not-found", f"sweep {sweep_id} does not sweep {param!r}: it sweeps {', '.join(sweep.request['space'])}",
                       field="param")
    logged = param_name(param) in log_scale_params(sweep.request)
    xs, ys = [], []
    for job in sweep_jobs(sweep_id):
        value, objective = (job.sweep_params or {}).get(param), objective_value(job, sweep.objective_metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and objective is not None:
            xs.append(math.log10(value) if logged and value > 0 else value)
            ys.append(objective)
    label = f"log10({param})" if logged else param
    return _svg(charts.scatter_chart({sweep.objective_metric: (np.array(xs), np.array(ys))}, f"{sweep.objective_metric} against {param}",
                                     label, sweep.objective_metric), f"no ended job of sweep {sweep_id} has a numeric {param} and an objective")


@bp.get(f"/sweeps/{SWEEP_ID}/charts/parallel")
@operation("charts", ok=Chart, query=NoQuery, problems=("not-found", "not-recorded"), media=SVG)
def sweep_parallel(sweep_id: int):
    """Parallel coordinates: one line per ended job across the swept (numeric) parameters and the objective."""
    sweep = sweep_or_404(sweep_id)
    logged = log_scale_params(sweep.request)
    params = list(sweep.request["space"])
    rows = []
    for job in sweep_jobs(sweep_id):
        objective = objective_value(job, sweep.objective_metric)
        values = [(job.sweep_params or {}).get(p) for p in params]
        if objective is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        rows.append([math.log10(v) if param_name(p) in logged and v > 0 else v for p, v in zip(params, values, strict=True)] + [objective])
    axes = [f"log10({p})" if param_name(p) in logged else p for p in params] + [sweep.objective_metric]
    return _svg(charts.parallel_coordinates(axes, rows, "Parallel coordinates (lines: ended jobs; blue is best)"),
                f"sweep {sweep_id} has no ended job with numeric parameters")


@bp.get("/compare/chart")
@operation("charts", ok=Chart, query=CompareQuery, problems=("not-found", "not-recorded"), media=SVG)
def compare_chart():
    """Several jobs' `key` (default `loss`) overlaid by step."""
    query: CompareQuery = request.context.query
    series = {}
    for job_id in dict.fromkeys(int(i) for i in query.jobs.split(",")):
        job = job_or_404(job_id)
        points = metrics.read(db(), job_id, [query.key]).get(query.key)
        if points is not None:
            series[f"job {job_id}" + (f" {job.name}" if job.name else "")] = metrics.downsample(*points, query.max_points)
    return _svg(charts.line_chart(series, f"{query.key} by step"), f"none of the jobs recorded {query.key!r}")
