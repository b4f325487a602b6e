"""/api/v1/sweeps: create, list, read (progress and leaderboard), cancel, extend, importance."""

from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, Response, current_app, request, url_for
from sqlalchemy import select

from engine.spec import SpecError
from engine.stacking import state_bytes
from services.datasets.use import raw_data
from services.jobs.checks import OverLimit, check_quota, parse_document
from services.jobs.metadata import META_FIELDS
from services.jobs.time_limits import TimeLimits
from services.jobs.time_limits import resolve as resolve_time_limits
from services.settings import Settings
from services.store import sweeps as sweeps_store
from services.store.db import session_factory
from services.store.models import Job as JobRow
from services.store.models import Sweep as SweepRow
from services.store.models import SweepStatus
from services.sweeps import advance, study
from services.sweeps.request import SweepRequest, corner_points, job_spec

from ..auth import owner
from ..errors import ApiError
from ..idempotency import IdempotencyHeaders, accepted, commit_with_key, replay_or_none
from ..negotiation import wants
from ..openapi import operation
from ..owned import sweep_or_404
from ..representations import sweep_model, sweep_summary
from ..request_session import db, transaction
from ..schemas.common import NoQuery
from ..schemas.sweeps import ExtendRequest, Importance, Sweep, SweepList, SweepListQuery
from ..submission import check, dataset_rows, invalid, over_limit, resolved

bp = Blueprint("sweeps", __name__, url_prefix="/api/v1/sweeps")
SWEEP_ID = "<int(min=1, max=2147483647):sweep_id>"


def sweep_jobs(sweep_id: int) -> list[JobRow]:
    """The sweep's jobs, in the order they were made."""
    return list(db().scalars(select(JobRow).where(JobRow.sweep_id == sweep_id).order_by(JobRow.id)))


def _sweep_response(sweep: SweepRow, replayed: bool = False):
    return accepted(sweep_model(sweep, sweep_jobs(sweep.id)), url_for("sweeps.get_sweep", sweep_id=sweep.id), replayed)


def _check(req: SweepRequest, settings: Settings) -> TimeLimits:
    """The jobs' time limits, once every point the sweep will start has passed the job checks.

    The base's data is parsed and loaded once and shared by every point that does not change it, so
    checking a 500-point grid over a large inline dataset costs one load plus small work per point."""
    try:
        limits = resolve_time_limits(req.time_limits, settings)
        planned = req.n_trials * req.seeds
        if planned > settings.max_sweep_jobs:
            raise ApiError("over-limit", f"the sweep needs {planned:,} jobs, over the limit of {settings.max_sweep_jobs:,} "
                           "(MAX_SWEEP_JOBS)", field="space",
                           limit={"name": "MAX_SWEEP_JOBS", "value": settings.max_sweep_jobs, "requested": planned})
        misplaced = [key for key in META_FIELDS if key in req.base]
        if misplaced:  # the sweep's own name, experiment, tags and time_limits apply to its jobs
            raise SpecError([(f"base.{key}", f"set {key} on the sweep, not in its base spec") for key in misplaced])
    except SpecError as exc:
        raise invalid(exc.errors, "invalid-sweep") from None
    shares_data = req.shares_data
    data, raw, needed, states = None, None, [], []
    for point in corner_points(req):
        try:
            document = resolved(job_spec(req, point, 0), "invalid-sweep")  # an uploaded dataset's reference completed
            parsed = parse_document(document if data is None else {**document, "data": data})
            if shares_data and raw is None:
                data, raw = parsed.data, raw_data(db(), parsed)
            checked = check(document, settings, parsed=parsed, raw=raw if shares_data else dataset_rows(document))
            needed.append(checked.record_bytes)
            states.append(state_bytes(checked.parsed, checked.plan))
        except (SpecError, ApiError) as exc:
            error = exc if isinstance(exc, ApiError) else invalid(exc.errors)
            where = ", ".join(f"{k}={v!r}" for k, v in point.items())
            raise ApiError("invalid-sweep" if error.kind == "invalid-spec" else error.kind, f"at {where}: {error.detail}",
                           field=error.field, errors=error.errors, point=point, **error.extra) from None
    # What the sweep's jobs would hold trained all at once: every grid point's state, or the largest corner's for each sampled one.
    combined = (sum(states) if req.strategy == "grid" else max(states) * req.n_trials) * req.seeds
    if combined > settings.max_sweep_state_bytes:
        raise ApiError("over-limit", f"the sweep's jobs would hold {combined / 2**30:.1f} GiB of training state in all (weights, "
                       f"gradients, optimizer state, activations), over {settings.max_sweep_state_bytes / 2**30:.1f} GiB "
                       "(MAX_SWEEP_STATE_BYTES): fewer points or seeds, or smaller networks", field="space",
                       limit={"name": "MAX_SWEEP_STATE_BYTES", "value": settings.max_sweep_state_bytes, "requested": combined})
    # Grids reserve every point's recording now; a sampled point is checked again, quota included, when it is drawn.
    reserved = (sum(needed) if req.strategy == "grid" else max(needed)) * req.seeds
    try:
        check_quota(db(), owner(), reserved, settings)
    except OverLimit as exc:
        raise over_limit(exc) from None
    return limits


@bp.post("")
@operation("sweeps", ok=Sweep, status=202, body=SweepRequest, body_kind="invalid-sweep", headers=IdempotencyHeaders, query=NoQuery,
           problems=("idempotency-key-reused", "over-limit", "too-many-requests"), response_headers={"Location": "the sweep's URL"})
def create_sweep():
    """Create a sweep: every point's spec is checked, the sweep stored and its first jobs queued."""
    settings = current_app.config["SETTINGS"]
    body = request.get_json()
    prior = replay_or_none(body, "sweep")
    if prior is not None:
        return _sweep_response(sweep_or_404(prior), replayed=True)
    req: SweepRequest = request.context.json
    limits = _check(req, settings)
    sweep = advance.create_sweep(db(), req, limits, owner(), mirrored=bool(settings.mlflow_tracking_uri))
    prior = commit_with_key(body, "sweep", sweep.id)
    if prior is not None:
        return _sweep_response(sweep_or_404(prior), replayed=True)
    advance.advance(session_factory(settings.database_url), sweep.id, settings)
    db().expire_all()
    return _sweep_response(sweep_or_404(sweep.id))


@bp.get("")
@operation("sweeps", ok=SweepList, query=SweepListQuery)
def list_sweeps():
    """List sweeps, newest first, with their progress (pages through `next_cursor`)."""
    query: SweepListQuery = request.context.query
    rows = select(SweepRow).where(SweepRow.owner == owner()).order_by(SweepRow.id.desc()).limit(query.limit + 1)
    if query.cursor is not None:
        rows = rows.where(SweepRow.id < query.cursor)
    page = list(db().scalars(rows))
    cursor = page[query.limit - 1].id if len(page) > query.limit else None
    return SweepList(sweeps=[sweep_summary(s, sweep_jobs(s.id)) for s in page[:query.limit]],
                     next_cursor=None if cursor is None else str(cursor),
                     next=None if cursor is None else url_for("sweeps.list_sweeps", cursor=cursor, limit=query.limit))


def _leaderboard_csv(sweep: SweepRow, body: Sweep) -> Response:
    out = io.StringIO()
    paths = list(sweep.request["space"])
    writer = csv.writer(out)
    writer.writerow(["rank", "trial", *paths, "objective_mean", "objective_std", "final_loss_mean", "diverged", "seeds_done", "status"])
    for rank, row in enumerate(body.leaderboard, 1):
        values = [row.params.get(p) for p in paths]
        writer.writerow([rank, row.trial, *[v if isinstance(v, (int, float, str)) else json.dumps(v) for v in values],
                         row.objective_mean, row.objective_std, row.final_loss_mean, row.diverged, row.seeds_done, row.status])
    return Response(out.getvalue(), mimetype="text/csv")


@bp.get(f"/{SWEEP_ID}")
@operation("sweeps", ok=Sweep, query=NoQuery, problems=("not-found",),
           media={"text/csv": "the leaderboard, one row per point (with `Accept: text/csv`)"})
def get_sweep(sweep_id: int):
    """A sweep: progress by state, the leaderboard (mean ± std over seeds, best first) and its jobs."""
    sweep = sweep_or_404(sweep_id)
    body = sweep_model(sweep, sweep_jobs(sweep_id))
    if wants("application/json", "text/csv") == "text/csv":
        return _leaderboard_csv(sweep, body)
    return body


@bp.post(f"/{SWEEP_ID}/cancel")
@operation("sweeps", ok=Sweep, status=202, query=NoQuery, problems=("not-found", "already-ended"))
def cancel_sweep(sweep_id: int):
    """Cancel a sweep and its unfinished jobs."""
    sweep = sweep_or_404(sweep_id)
    if sweep.status != SweepStatus.running:
        raise ApiError("already-ended", f"sweep {sweep_id} already ended ({sweep.status})", status_now=sweep.status.value)
    with transaction() as session:
        advance.cancel(session, sweep_id)
    db().expire_all()
    return accepted(sweep_model(sweep_or_404(sweep_id), sweep_jobs(sweep_id)))


@bp.post(f"/{SWEEP_ID}/extend")
@operation("sweeps", ok=Sweep, status=202, body=ExtendRequest, query=NoQuery, problems=("not-found", "already-ended", "over-limit"))
def extend_sweep(sweep_id: int):
    """More trials for a random or tpe sweep, running or finished: its Optuna study keeps what it learned (the next
    points are asked of it with every finished trial told), no finished trial is trained again, and it runs until
    the new ones have ended. A grid sweep has no points left to add; a cancelled one stays cancelled."""
    settings = current_app.config["SETTINGS"]
    sweep = sweep_or_404(sweep_id)
    more: ExtendRequest = request.context.json
    if sweep.status == SweepStatus.cancelled:
        raise ApiError("already-ended", f"sweep {sweep_id} was cancelled", status_now=sweep.status.value)
    if sweep.strategy == "grid":
        raise ApiError("invalid-input", f"sweep {sweep_id} is a grid: it has tried or queued every point of its grid; start "
                       "another sweep over a wider grid", field="trials")
    planned = (sweep.n_trials + more.trials) * sweep.seeds
    if planned > settings.max_sweep_jobs:
        raise ApiError("over-limit", f"the sweep would need {planned:,} jobs, over the limit of {settings.max_sweep_jobs:,} "
                       "(MAX_SWEEP_JOBS)", field="trials", limit={"name": "MAX_SWEEP_JOBS", "value": settings.max_sweep_jobs,
                                                                  "requested": planned})
    with transaction() as session:
        sweeps_store.extend(session, sweep_id, more.trials)
    advance.advance(session_factory(settings.database_url), sweep_id, settings)
    db().expire_all()
    return accepted(sweep_model(sweep_or_404(sweep_id), sweep_jobs(sweep_id)))


@bp.get(f"/{SWEEP_ID}/importance")
@operation("sweeps", ok=Importance, query=NoQuery, problems=("not-found", "not-enough-results"))
def get_importance(sweep_id: int):
    """Which swept parameters matter for the objective (Optuna's fANOVA importance)."""
    sweep = sweep_or_404(sweep_id)
    value = sweep.importance
    if value is None:
        value = study.importance(study.load_study(sweep, current_app.config["SETTINGS"].database_url))
    if value is None:
        raise ApiError("not-enough-results", "importance needs at least two finished points that differ")
    return Importance(sweep_id=sweep_id, objective=sweep.objective_metric, importance=value, final=sweep.status != SweepStatus.running)
