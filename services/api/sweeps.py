"""/api/v1/sweeps: create, list, read (progress and leaderboard), cancel, importance."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from flask import Blueprint, Response, current_app, request, url_for
from sqlalchemy import select

from engine.spec import SpecError
from services import dispatch, sweeps
from services.models import Job, Sweep
from services.time_limits import resolve as resolve_time_limits

from .auth import owner
from .errors import ApiError
from .idempotent import accepted, created, replay_or_none
from .limits import submission_limit
from .serialize import job_json
from .store import db
from .submission import META_FIELDS, check_submission, invalid

bp = Blueprint("sweeps", __name__, url_prefix="/api/v1/sweeps")


def _settings():
    return current_app.config["SETTINGS"]


def _sweep_or_404(sweep_id: int) -> Sweep:
    """The sweep, if it exists and is the caller's."""
    sweep = db().get(Sweep, sweep_id)
    if sweep is None or sweep.owner != owner():
        raise ApiError(404, "Not found", f"no sweep {sweep_id}", kind="not-found")
    return sweep


def _jobs(sweep_id: int) -> list[Job]:
    return list(db().scalars(select(Job).where(Job.sweep_id == sweep_id).order_by(Job.id)))


def sweep_json(sweep: Sweep, sweep_jobs: list[Job], with_jobs: bool = True) -> dict[str, Any]:
    by_state: dict[str, int] = {}
    for job in sweep_jobs:
        by_state[job.status] = by_state.get(job.status, 0) + 1
    body = {
        "id": sweep.id, "name": sweep.name, "experiment": sweep.experiment, "strategy": sweep.strategy, "status": sweep.status,
        "created_at": sweep.created_at.isoformat(), "objective": {"metric": sweep.objective_metric, "goal": sweep.objective_goal},
        "progress": {"trials": sweep.n_trials, "trials_started": sweep.trials_created, "seeds": sweep.seeds,
                     "planned_jobs": sweep.n_trials * sweep.seeds, "jobs": len(sweep_jobs), "by_state": by_state},
        "max_parallel": sweep.max_parallel, "importance": sweep.importance,
        "leaderboard": sweeps.leaderboard(sweep, sweep_jobs),
        "links": {"self": url_for("sweeps.get_sweep", sweep_id=sweep.id), "jobs": url_for("jobs.list_jobs", sweep_id=sweep.id),
                  "importance": url_for("sweeps.get_importance", sweep_id=sweep.id),
                  "cancel": url_for("sweeps.cancel_sweep", sweep_id=sweep.id)},
    }
    if with_jobs:
        body["jobs"] = [job_json(j, with_spec=False) for j in sweep_jobs]
    return body


def _sweep_response(sweep: Sweep, replayed: bool = False) -> Response:
    return accepted(sweep_json(sweep, _jobs(sweep.id)), url_for("sweeps.get_sweep", sweep_id=sweep.id), replayed)


@bp.post("")
@submission_limit
def create_sweep():
    """Validate every point's spec, store the sweep, queue its first jobs; 202."""
    settings = _settings()
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "Bad request", "the body must be JSON (Content-Type: application/json)", kind="bad-request")
    prior = replay_or_none(body, "sweep")
    if prior is not None:
        return _sweep_response(_sweep_or_404(prior), replayed=True)
    try:
        req = sweeps.parse_request(body)
        limits = resolve_time_limits(body.get("time_limits"), settings)
        planned = req.n_trials * req.seeds
        if planned > settings.max_sweep_jobs:
            raise ApiError(422, "Over a limit", f"the sweep needs {planned:,} jobs, over the limit of {settings.max_sweep_jobs:,} (MAX_SWEEP_JOBS)",
                           kind="over-limit", field="space", limit={"name": "MAX_SWEEP_JOBS", "value": settings.max_sweep_jobs, "requested": planned})
        misplaced = [key for key in META_FIELDS if key in req.base]
        if misplaced:  # the sweep's own name, experiment, tags and time_limits apply to its jobs
            raise SpecError([(f"base.{key}", f"set {key} on the sweep, not in its base spec") for key in misplaced])
        for point in sweeps.corner_points(req):
            spec = sweeps.job_spec(req, point, 0)
            try:
                check_submission(spec, settings)
            except ApiError as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise ApiError(exc.status, exc.title, f"at {where}: {exc.detail}", kind=exc.kind, field=exc.field,
                               errors=exc.errors, point=point) from None
    except SpecError as exc:
        raise invalid(exc.errors, "Invalid sweep") from None
    session = db()
    sweep = sweeps.create_sweep(session, req, limits, owner())
    prior = created(body, "sweep", sweep.id)
    if prior is not None:
        return _sweep_response(_sweep_or_404(prior), replayed=True)
    sweeps.advance_sweep(session, sweep.id, settings.database_url, lambda job_id: dispatch.send(session, [job_id], settings))
    session.refresh(sweep)
    return _sweep_response(sweep)


@bp.get("")
def list_sweeps():
    rows = db().scalars(select(Sweep).where(Sweep.owner == owner()).order_by(Sweep.id.desc()).limit(100))
    return {"sweeps": [{k: v for k, v in sweep_json(s, _jobs(s.id), with_jobs=False).items() if k != "leaderboard"} for s in rows]}


@bp.get("/<id:sweep_id>")
def get_sweep(sweep_id: int):
    """Progress by state and the leaderboard; `Accept: text/csv` gives the leaderboard as CSV."""
    sweep = _sweep_or_404(sweep_id)
    body = sweep_json(sweep, _jobs(sweep_id))
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
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
    sweep = _sweep_or_404(sweep_id)
    if sweep.status != "running":
        raise ApiError(409, "Conflict", f"sweep {sweep_id} already ended ({sweep.status})", kind="already-ended")
    sweeps.cancel(db(), sweep_id)
    db().expire_all()
    return accepted(sweep_json(_sweep_or_404(sweep_id), _jobs(sweep_id)))


@bp.get("/<id:sweep_id>/importance")
def get_importance(sweep_id: int):
    """Which swept parameters matter for the objective (Optuna's fANOVA importance)."""
    sweep = _sweep_or_404(sweep_id)
    value = sweep.importance
    if value is None:
        study = sweeps.load_study(sweep, _settings().database_url)
        value = sweeps.importance(study)
    if value is None:
        raise ApiError(409, "Not enough results", "importance needs at least two finished points that differ", kind="not-enough-results")
    return {"sweep_id": sweep_id, "objective": sweep.objective_metric, "importance": value, "final": sweep.status != "running"}


