"""/api/v1/sweeps: create, list, read (progress and leaderboard), cancel, importance."""

from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, Response, current_app, url_for
from sqlalchemy import select

from engine.spec import SpecError
from services.store.db import session_factory
from services.store.models import Job, Sweep, SweepStatus
from services.sweeps import advance, study
from services.sweeps.request import corner_points, job_spec, parse_request
from services.time_limits import resolve as resolve_time_limits

from ..auth import owner
from ..errors import ApiError
from ..idempotency import accepted, commit_with_key, replay_or_none
from ..owned import sweep_or_404
from ..query import json_body, wants
from ..representations import sweep_json
from ..request_session import db, transaction
from ..submission import META_FIELDS, check_submission, invalid

bp = Blueprint("sweeps", __name__, url_prefix="/api/v1/sweeps")


def _jobs(sweep_id: int) -> list[Job]:
    return list(db().scalars(select(Job).where(Job.sweep_id == sweep_id).order_by(Job.id)))


def _sweep_response(sweep: Sweep, replayed: bool = False) -> Response:
    return accepted(sweep_json(sweep, _jobs(sweep.id)), url_for("sweeps.get_sweep", sweep_id=sweep.id), replayed)


def _check(body: object, settings):
    """The parsed sweep and its jobs' time limits, once every point it will start has passed the job checks."""
    try:
        req = parse_request(body)
        limits = resolve_time_limits(body.get("time_limits"), settings)
        planned = req.n_trials * req.seeds
        if planned > settings.max_sweep_jobs:
            raise ApiError(422, "Over a limit", f"the sweep needs {planned:,} jobs, over the limit of {settings.max_sweep_jobs:,} "
                           "(MAX_SWEEP_JOBS)", kind="over-limit", field="space",
                           limit={"name": "MAX_SWEEP_JOBS", "value": settings.max_sweep_jobs, "requested": planned})
        misplaced = [key for key in META_FIELDS if key in req.base]
        if misplaced:  # the sweep's own name, experiment, tags and time_limits apply to its jobs
            raise SpecError([(f"base.{key}", f"set {key} on the sweep, not in its base spec") for key in misplaced])
        for point in corner_points(req):
            try:
                check_submission(job_spec(req, point, 0), settings)
            except ApiError as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise ApiError(exc.status, exc.title, f"at {where}: {exc.detail}", kind=exc.kind, field=exc.field,
                               errors=exc.errors, point=point) from None
    except SpecError as exc:
        raise invalid(exc.errors, "Invalid sweep") from None
    return req, limits


@bp.post("")
def create_sweep():
    """Validate every point's spec, store the sweep, queue its first jobs; 202."""
    settings = current_app.config["SETTINGS"]
    body = json_body()
    prior = replay_or_none(body, "sweep")
    if prior is not None:
        return _sweep_response(sweep_or_404(prior), replayed=True)
    req, limits = _check(body, settings)
    sweep = advance.create_sweep(db(), req, limits, owner(), mirrored=bool(settings.mlflow_tracking_uri))
    prior = commit_with_key(body, "sweep", sweep.id)
    if prior is not None:
        return _sweep_response(sweep_or_404(prior), replayed=True)
    advance.advance(session_factory(settings.database_url), sweep.id, settings)
    db().expire_all()
    return _sweep_response(sweep_or_404(sweep.id))


@bp.get("")
def list_sweeps():
    rows = db().scalars(select(Sweep).where(Sweep.owner == owner()).order_by(Sweep.id.desc()).limit(100))
    return {"sweeps": [{k: v for k, v in sweep_json(s, _jobs(s.id), with_jobs=False).items() if k != "leaderboard"} for s in rows]}


@bp.get("/<id:sweep_id>")
def get_sweep(sweep_id: int):
    """Progress by state and the leaderboard; `Accept: text/csv` gives the leaderboard as CSV."""
    sweep = sweep_or_404(sweep_id)
    body = sweep_json(sweep, _jobs(sweep_id))
    if wants("application/json", "text/csv") == "text/csv":
        out = io.StringIO()
        paths = list(sweep.request["space"])
        writer = csv.writer(out)
        writer.writerow(["rank", "trial", *paths, "objective_mean", "objective_std", "final_loss_mean", "diverged", "seeds_done", "status"])
        for rank, row in enumerate(body["leaderboard"], 1):
            writer.writerow([rank, row["trial"], *[json.dumps(row["params"].get(p)) for p in paths], row["objective_mean"],
                             row["objective_std"], row["final_loss_mean"], row["diverged"], row["seeds_done"], row["status"]])
        return Response(out.getvalue(), mimetype="text/csv")
    return body


@bp.post("/<id:sweep_id>/cancel")
def cancel_sweep(sweep_id: int):
    sweep = sweep_or_404(sweep_id)
    if sweep.status != SweepStatus.running:
        raise ApiError(409, "Conflict", f"sweep {sweep_id} already ended ({sweep.status})", kind="already-ended")
    with transaction() as session:
        advance.cancel(session, sweep_id)
    db().expire_all()
    return accepted(sweep_json(sweep_or_404(sweep_id), _jobs(sweep_id)))


@bp.get("/<id:sweep_id>/importance")
def get_importance(sweep_id: int):
    """Which swept parameters matter for the objective (Optuna's fANOVA importance)."""
    sweep = sweep_or_404(sweep_id)
    value = sweep.importance
    if value is None:
        value = study.importance(study.load_study(sweep, current_app.config["SETTINGS"].database_url))
    if value is None:
        raise ApiError(409, "Not enough results", "importance needs at least two finished points that differ", kind="not-enough-results")
    return {"sweep_id": sweep_id, "objective": sweep.objective_metric, "importance": value, "final": sweep.status != SweepStatus.running}
