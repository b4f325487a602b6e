"""/api/v1/jobs: submit, list, read, cancel, and everything a job recorded."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any, Iterator

import numpy as np
from flask import Blueprint, Response, current_app, request, stream_with_context, url_for

from engine.inference import predict as engine_predict
from engine.spec import SpecError, parse_spec
from engine.trace import format_trace_table
from services import dispatch, jobs, metrics, step_arrays
from services.db import session_factory
from services.jobs import JobFilter
from services.models import TERMINAL_VALUES, Job, JobStatus

from .auth import owner
from .errors import ApiError
from .idempotent import accepted, created, replay_or_none
from .limits import submission_limit
from .serialize import job_json
from .store import db
from .submission import check_submission, invalid

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")
STATUSES = [s.value for s in JobStatus]
KEEPALIVE_SECONDS = 2.0
MAX_QUERY_INT = 2**31 - 1  # ids, steps and cursors all fit; larger numbers would overflow the database


def _settings():
    return current_app.config["SETTINGS"]


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "Bad request", "the body must be JSON (Content-Type: application/json)", kind="bad-request")
    return body


def _job_or_404(job_id: int) -> Job:
    """The job, if it exists and is the caller's (another owner's job is as absent as a missing one)."""
    job = jobs.get_job(db(), job_id, owner())
    if job is None:
        raise ApiError(404, "Not found", f"no job {job_id}", kind="not-found")
    return job


def _int_arg(name: str, default: int | None = None, minimum: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "Bad request", f"{name}: must be an integer, got {raw!r}", kind="bad-query", field=name) from None
    if minimum is not None and value < minimum:
        raise ApiError(400, "Bad request", f"{name}: must be at least {minimum}, got {value}", kind="bad-query", field=name)
    if abs(value) > MAX_QUERY_INT:
        raise ApiError(400, "Bad request", f"{name}: must be between -{MAX_QUERY_INT} and {MAX_QUERY_INT}, got {value}",
                       kind="bad-query", field=name)
    return value


def _job_response(job: Job, replayed: bool = False) -> Response:
    return accepted(job_json(job), url_for("jobs.get_job", job_id=job.id), replayed)


@bp.post("")
@submission_limit
def submit_job():
    """Validate, then store the queued job with its outbox row in one transaction; hand it to the
    broker (if Redis is down it stays in the outbox and starts later). 202 with the job and its Location."""
    body = _json_body()
    prior = replay_or_none(body, "job")
    if prior is not None:
        return _job_response(_job_or_404(prior), replayed=True)
    submission = check_submission(body, _settings())
    session = db()
    job = jobs.create_job(session, submission.spec, total_steps=submission.plan.total_steps, n_params=submission.plan.n_params,
                          owner=owner(), name=submission.name, experiment=submission.experiment, tags=submission.tags,
                          time_limits=submission.time_limits)
    prior = created(body, "job", job.id)  # commits the job, its outbox row and the key together
    if prior is not None:
        return _job_response(_job_or_404(prior), replayed=True)
    dispatch.send(session, [job.id], _settings())
    return _job_response(job)


@bp.get("")
def list_jobs():
    """Jobs, newest first, filtered by status, experiment, tag (key or key:value), sweep_id; cursor pages."""
    status = request.args.get("status")
    if status and status not in STATUSES:
        raise ApiError(400, "Bad request", f"status: must be one of {', '.join(STATUSES)}", kind="bad-query", field="status")
    limit = min(_int_arg("limit", 50, minimum=1), 500)
    flt = JobFilter(status=status, experiment=request.args.get("experiment"), tag=request.args.get("tag"),
                    sweep_id=_int_arg("sweep_id"), owner=owner())
    page = jobs.list_jobs(db(), flt, limit + 1, before_id=_int_arg("cursor"))
    body: dict[str, Any] = {"jobs": [job_json(j, with_spec=False) for j in page[:limit]], "next_cursor": None, "links": {}}
    if len(page) > limit:
        cursor = page[limit - 1].id
        body["next_cursor"] = str(cursor)
        args = {k: v for k, v in request.args.items() if k != "cursor"}
        body["links"]["next"] = url_for("jobs.list_jobs", cursor=cursor, **args)
    return body


@bp.get("/<id:job_id>")
def get_job(job_id: int):
    return job_json(_job_or_404(job_id))


@bp.post("/<id:job_id>/cancel")
def cancel_job(job_id: int):
    """A queued job never starts; a running one stops within a second and keeps its points."""
    job = _job_or_404(job_id)
    if job.status in TERMINAL_VALUES:
        raise ApiError(409, "Conflict", f"job {job_id} already ended ({job.status})", kind="already-ended", status_now=job.status)
    jobs.cancel(db(), job_id)
    db().expire_all()
    return accepted(job_json(_job_or_404(job_id)))


@bp.get("/<id:job_id>/metrics/keys")
def get_metric_keys(job_id: int):
    _job_or_404(job_id)
    return {"keys": metrics.keys(db(), job_id)}


@bp.get("/<id:job_id>/metrics")
def get_metrics(job_id: int):
    """`{key: {"steps": [...], "values": [...]}}`; `keys`, `start`, `end`, `max_points`; CSV on request."""
    _job_or_404(job_id)
    wanted = [k for k in request.args.get("keys", "").split(",") if k] or None
    start, end = _int_arg("start", minimum=0), _int_arg("end", minimum=0)
    max_points = _int_arg("max_points", minimum=4)
    series = metrics.read(db(), job_id, wanted, start, end)
    for key in wanted or []:
        series.setdefault(key, (np.empty(0, dtype=np.int32), np.empty(0)))
    if max_points is not None:
        series = {k: metrics.downsample(s, v, max_points) for k, (s, v) in series.items()}
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["key", "step", "value"])
        for key in sorted(series):
            steps, values = series[key]
            writer.writerows((key, int(s), repr(float(v))) for s, v in zip(steps, values))
        return Response(out.getvalue(), mimetype="text/csv")
    return {k: {"steps": s.tolist(), "values": v.tolist()} for k, (s, v) in sorted(series.items())}


def _step_array(job_id: int, kind: str) -> tuple[Job, int, bytes]:
    job = _job_or_404(job_id)
    step = _int_arg("step", minimum=0)
    if step is None:
        raise ApiError(400, "Bad request", "step: required (a recorded step number)", kind="bad-query", field="step")
    data = step_arrays.read(db(), job_id, kind, step)
    if data is None:
        recorded = step_arrays.steps(db(), job_id, kind)
        hint = "record.gradients is not 'full'" if kind == "gradients" else "record.trace did not ask for it"
        detail = f"no {kind} recorded at step {step}: " + (f"recorded steps are {recorded[:20]}" if recorded else hint)
        raise ApiError(404, "Not recorded", detail, kind="not-recorded", recorded_steps=recorded[:1000])
    return job, step, data


@bp.get("/<id:job_id>/gradients")
def get_gradients(job_id: int):
    _, step, data = _step_array(job_id, "gradients")
    return {"step": step, "gradients": {k: v.tolist() for k, v in step_arrays.decode_gradients(data).items()}}


@bp.get("/<id:job_id>/trace")
def get_trace(job_id: int):
    """The trace as JSON, or with `Accept: text/plain` as the post's trace table."""
    _, _, data = _step_array(job_id, "trace")
    trace = step_arrays.decode_trace(data)
    if request.accept_mimetypes.best_match(["application/json", "text/plain"]) == "text/plain":
        return Response(format_trace_table(trace) + "\n", mimetype="text/plain")
    return trace


def _model_or_409(job: Job) -> dict:
    if job.model is None:
        raise ApiError(409, "No model yet", f"job {job.id} is {job.status}; the trained model is stored when it ends",
                       kind="no-model", status_now=job.status)
    return job.model


@bp.get("/<id:job_id>/model")
def get_model(job_id: int):
    job = _job_or_404(job_id)
    return {"job_id": job.id, "status": job.status, "layers": job.spec["model"]["layers"], **_model_or_409(job)}


@bp.post("/<id:job_id>/predict")
def predict(job_id: int):
    job = _job_or_404(job_id)
    model = _model_or_409(job)
    body = _json_body()
    if not isinstance(body, dict) or "X" not in body:
        raise invalid([("X", "required: a list of input rows")], "Invalid prediction request")
    try:
        return engine_predict(parse_spec(job.spec), model, body["X"])
    except SpecError as exc:
        raise invalid(exc.errors, "Invalid prediction request") from None


@bp.get("/<id:job_id>/events")
def events(job_id: int):
    """Server-Sent Events: `status` on every change, `progress` (step, loss) as it moves, then `end`."""
    _job_or_404(job_id)
    sessions = session_factory(_settings().database_url)
    poll = current_app.config.get("EVENTS_POLL_SECONDS", 0.25)
    timeout = current_app.config.get("EVENTS_MAX_SECONDS", 3600)
    return Response(stream_with_context(_event_stream(sessions, job_id, poll, timeout)), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _event_stream(sessions, job_id: int, poll: float, timeout: float) -> Iterator[str]:
    last_status, last_step, started = None, None, time.monotonic()
    last_sent = started
    while time.monotonic() - started < timeout:
        with sessions() as session:
            job = session.get(Job, job_id)
            status, step, total, loss = job.status, job.step, job.total_steps, job.last_loss
            final = job_json(job, with_spec=False) if status in TERMINAL_VALUES else None
        if status != last_status:
            yield _sse("status", {"id": job_id, "status": status})
            last_status, last_sent = status, time.monotonic()
        if step != last_step:
            yield _sse("progress", {"id": job_id, "step": step, "total_steps": total, "loss": loss})
            last_step, last_sent = step, time.monotonic()
        if final is not None:
            yield _sse("end", final)
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            # A comment line keeps proxies from closing an idle stream, and lets the server notice a
            # client that left (a write fails), so the thread serving it is freed within seconds.
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        time.sleep(poll)


def _architecture(job: Job) -> list:
    from engine.problem import plan

    return [plan(parse_spec(job.spec)).n_inputs] + [[layer["units"], layer["activation"]] for layer in job.spec["model"]["layers"]]


@bp.get("/<id:job_a>/diff/<id:job_b>")
def diff(job_a: int, job_b: int):
    """Two runs of the same architecture, step by step: the first recorded step where the loss, a
    gradient statistic or a weight norm differ by more than `tolerance` (relative), and the final weights."""
    a, b = _job_or_404(job_a), _job_or_404(job_b)
    tolerance = request.args.get("tolerance", "1e-9")
    try:
        tol = float(tolerance)
        if not tol >= 0:
            raise ValueError
    except ValueError:
        raise ApiError(400, "Bad request", f"tolerance: must be a number >= 0, got {tolerance!r}", kind="bad-query", field="tolerance") from None
    arch_a, arch_b = _architecture(a), _architecture(b)
    if arch_a != arch_b:
        raise ApiError(422, "Different architectures", f"job {a.id} is {arch_a}, job {b.id} is {arch_b}", kind="different-architectures")
    series_a, series_b = metrics.read(db(), a.id), metrics.read(db(), b.id)
    keys = sorted(k for k in set(series_a) & set(series_b)
                  if k == "loss" or k.startswith(("grad_norm/", "grad_max/", "weight_norm/", "update_ratio/")))
    first, compared = None, set()
    for key in keys:
        (steps_a, values_a), (steps_b, values_b) = series_a[key], series_b[key]
        common, ia, ib = np.intersect1d(steps_a, steps_b, return_indices=True)
        compared.update(common.tolist())
        va, vb = values_a[ia], values_b[ib]
        rel = np.abs(va - vb) / np.maximum(np.maximum(np.abs(va), np.abs(vb)), 1e-300)
        bad = np.flatnonzero(rel > tol)
        if bad.size and (first is None or common[bad[0]] < first["step"]):
            i = int(bad[0])
            first = {"step": int(common[i]), "key": key, "a": float(va[i]), "b": float(vb[i]), "relative_difference": float(rel[i])}
    body: dict[str, Any] = {"a": a.id, "b": b.id, "tolerance": tol, "architecture": arch_a, "keys_compared": keys,
                            "steps_compared": len(compared), "first_difference": first, "identical": first is None}
    if a.model and b.model:
        per_layer = [float(np.max(np.abs(np.array(wa) - np.array(wb)))) for wa, wb in zip(a.model["weights"], b.model["weights"])]
        body["final_weights"] = {"max_abs_difference": max(per_layer), "per_layer": per_layer}
    return body
