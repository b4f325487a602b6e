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
from services.store import computations, metrics, step_arrays
from services.store.models import TERMINAL
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
    `dead_units`, `vanishing_ratio`, `sharpness` (λmax·η with its line at 2, with `record.curvature`), each
    downsampled to `max_points` a line with the job's diagnoses as dashed lines where each began; or
    `decision_boundary` (2-D inputs; the final model, or the weights of a traced `step`)."""
    job = job_or_404(job_id)
    query: ChartQuery = request.context.query
    if name not in ChartName.__args__:
        raise ApiError("not-found", f"no chart {name!r}: the charts are {', '.join(ChartName.__args__)}")
    if name == "decision_boundary":
        return _svg(_boundary(job, query.step), "the decision boundary needs 2-D inputs")
    keys = job_charts.keys_of(name, metrics.keys(db(), job_id, inherited=True))
    series = metrics.read(db(), job_id, keys, inherited=True) if keys else {}  # whole: smoothing runs over every point, then each line is downsampled
    log_y = None if query.scale is None else query.scale == "log"
    marks = [(d.step, f"{d.kind} (step {d.step}): {d.sentence}", d.severity) for d in job.diagnoses]  # where each diagnosis began
    return _svg(job_charts.chart(name, series, smoothing=query.smoothing, log_y=log_y, max_points=query.max_points, marks=marks),
                f"job {job_id} recorded no points for {name}")


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
    data = step_arrays.read(db(), job.id, "trace", step, inherited=True)
    replay = None if data is not None else computations.find(db(), job.id, "replay", {"step": step})
    if data is None and (replay is None or replay.result is None):
        raise ApiError("not-recorded", f"no trace at step {step}: the weights of a step are in its trace (ask for "
                       f"/jobs/{job.id}/trace?step={step} to have it replayed)", field="step",
                       recorded_steps=step_arrays.steps(db(), job.id, "trace", inherited=True)[:1000])
    layers = (step_arrays.decode_trace(data) if data is not None else replay.result["trace"])["layers"]
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
    return RecordedSteps(gradients=step_arrays.steps(db(), job_id, "gradients", inherited=True),
                         trace=step_arrays.steps(db(), job_id, "trace", inherited=True))


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _categories(dimension: object, values: list[object]) -> list[str]:
    """A categorical (or mixed, `1` and `"full"`) parameter's values as axis labels: in the order the
    sweep's space lists them, then any others in the order met."""
    listed = dimension if isinstance(dimension, list) else dimension.get("choice", []) if isinstance(dimension, dict) else []
    return list(dict.fromkeys([charts.category_label(v) for v in listed] + [charts.category_label(v) for v in values]))


class _Axis:
    """One swept parameter as a chart axis: numeric (log10 when the sweep searches it on a log scale) or categorical."""

    def __init__(self, sweep_request: dict, param: str, values: list[object]) -> None:
        present = [v for v in values if v is not None]
        self.logged = param_name(param) in log_scale_params(sweep_request)
        self.categories = None if present and all(map(_numeric, present)) else _categories(sweep_request["space"][param], present)
        self.label = f"log10({param})" if self.logged and self.categories is None else param

    def position(self, value: object) -> float:
        if self.categories is not None:
            return float(self.categories.index(charts.category_label(value))) if value is not None else math.nan
        return math.log10(value) if self.logged and value > 0 else float(value)


@bp.get(f"/sweeps/{SWEEP_ID}/charts/objective")
@operation("charts", ok=Chart, query=ObjectiveQuery, problems=("not-found", "not-recorded"), media=SVG)
def sweep_objective(sweep_id: int):
    """The objective of each ended job against one swept parameter: on a numeric axis (log10 when the sweep
    searches it on a log scale), or a categorical one when any value is not a number (`"full"`, `"relu"`);
    jobs that ended without an objective (diverged) as crosses along the top."""
    sweep = sweep_or_404(sweep_id)
    param = request.context.query.param
    if param not in sweep.request["space"]:
        raise ApiError("not-found", f"sweep {sweep_id} does not sweep {param!r}: it sweeps {', '.join(sweep.request['space'])}",
                       field="param")
    ended = [job for job in sweep_jobs(sweep_id) if job.status in TERMINAL]
    axis = _Axis(sweep.request, param, [(job.sweep_params or {}).get(param) for job in ended])
    xs, ys, missing = [], [], []
    for job in ended:
        value = (job.sweep_params or {}).get(param)
        if value is None:
            continue
        # the seeds of one categorical value spread a little apart, so they do not hide each other
        x = axis.position(value) + (0.08 * ((job.sweep_seed or 0) - (sweep.seeds - 1) / 2) if axis.categories else 0.0)
        objective = objective_value(job, sweep.objective_metric)
        if objective is None:
            missing.append(x)
        else:
            xs.append(x)
            ys.append(objective)
    return _svg(charts.scatter_chart({sweep.objective_metric: (np.array(xs), np.array(ys))}, f"{sweep.objective_metric} against {param}",
                                     axis.label, sweep.objective_metric, categories=axis.categories, missing=missing),
                f"no job of sweep {sweep_id} has ended yet")


@bp.get(f"/sweeps/{SWEEP_ID}/charts/parallel")
@operation("charts", ok=Chart, query=NoQuery, problems=("not-found", "not-recorded"), media=SVG)
def sweep_parallel(sweep_id: int):
    """Parallel coordinates: one line per ended job across the swept parameters (categorical ones as
    categorical axes) and the objective; jobs without an objective dashed and grey."""
    sweep = sweep_or_404(sweep_id)
    params = list(sweep.request["space"])
    ended = [job for job in sweep_jobs(sweep_id) if job.status in TERMINAL]
    axes = [_Axis(sweep.request, p, [(job.sweep_params or {}).get(p) for job in ended]) for p in params]
    rows = []
    for job in ended:
        objective = objective_value(job, sweep.objective_metric)
        values = [(job.sweep_params or {}).get(p) for p in params]
        rows.append([axis.position(v) if v is not None else math.nan for axis, v in zip(axes, values, strict=True)]
                    + [math.nan if objective is None else objective])
    categories = {j: axis.categories for j, axis in enumerate(axes) if axis.categories is not None}
    return _svg(charts.parallel_coordinates([axis.label for axis in axes] + [sweep.objective_metric], rows,
                                            "Parallel coordinates (lines: ended jobs; blue is best)", categories=categories),
                f"no job of sweep {sweep_id} has ended yet")


@bp.get(f"/sweeps/{SWEEP_ID}/charts/sharpness")
@operation("charts", ok=Chart, query=NoQuery, problems=("not-found", "not-recorded"), media=SVG)
def sweep_sharpness(sweep_id: int):
    """Each ended job's last recorded sharpness λmax against its learning rate η (both on log axes), with the
    curve λ = 2/η: gradient descent is stable below it, and full-batch training climbs to it and hovers there
    (the edge of stability). Jobs that record `record.curvature` only; diverged ones in red."""
    sweep_or_404(sweep_id)
    ended = [job for job in sweep_jobs(sweep_id) if job.status in TERMINAL]
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for job in ended:
        last = metrics.last_points(db(), job.id, ["sharpness"]).get("sharpness")
        lr = job.spec.get("optimizer", {}).get("lr")
        if last is None or not isinstance(lr, (int, float)) or lr <= 0:
            continue
        xs, ys = groups.setdefault("diverged" if job.status.value == "diverged" else "trained", ([], []))
        xs.append(math.log10(lr))
        ys.append(last[1])
    if not groups:
        raise ApiError("not-recorded", f"no ended job of sweep {sweep_id} recorded its sharpness (`record.curvature`)")
    every = [x for xs, _ in groups.values() for x in xs]
    grid = np.linspace(min(every) - 0.05, max(every) + 0.05, 50)
    points = {name: (np.array(xs), np.array(ys)) for name, (xs, ys) in sorted(groups.items(), key=lambda g: g[0] != "trained")}
    return _svg(charts.scatter_chart(points, "Final sharpness against the learning rate", "log10(η)", "λmax (log scale)", log_y=True,
                                     curve=(grid, 2 / 10 ** grid, "λ = 2/η")), f"sweep {sweep_id} has nothing to draw")


@bp.get("/compare/chart")
@operation("charts", ok=Chart, query=CompareQuery, problems=("not-found", "not-recorded"), media=SVG)
def compare_chart():
    """Several jobs' `key` (default `loss`) overlaid by step."""
    query: CompareQuery = request.context.query
    series, forks = {}, []
    for job_id in dict.fromkeys(int(i) for i in query.jobs.split(",")):
        job = job_or_404(job_id)
        points = metrics.read(db(), job_id, [query.key], inherited=True).get(query.key)
        if points is not None:
            series[f"job {job_id}" + (f" {job.name}" if job.name else "")] = points
        if job.forked_from_job is not None:  # where a fork leaves its parent's run: a dashed line at its fork step
            forks.append((job.forked_from_step, f"job {job_id} forks from job {job.forked_from_job}", "fork"))
    log_y = query.scale == "log"
    return _svg(charts.line_chart(series, f"{query.key} by step" + (" (log scale)" if log_y else ""), log_y=log_y,
                                  smoothing=query.smoothing, max_points=query.max_points, marks=forks),
                f"none of the jobs recorded {query.key!r}")
