"""/api/v1/jobs: submit, list, read, cancel."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request, url_for

from services.store import jobs, outbox
from services.store.jobs import JobFilter
from services.store.models import TERMINAL, Job, JobStatus

from ..auth import owner
from ..errors import ApiError
from ..idempotency import accepted, commit_with_key, replay_or_none
from ..owned import job_or_404
from ..query import int_arg, json_body
from ..representations import job_json
from ..request_session import db, transaction
from ..submission import check_submission

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")
MAX_PAGE = 500


def _job_response(job: Job, replayed: bool = False) -> Response:
    return accepted(job_json(job), url_for("jobs.get_job", job_id=job.id), replayed)


@bp.post("")
def submit_job():
    """Validate, then store the queued job with its outbox row in one transaction; hand it to the
    broker (if Redis is down it stays in the outbox and starts later). 202 with the job and its Location."""
    body = json_body()
    prior = replay_or_none(body, "job")
    if prior is not None:
        return _job_response(job_or_404(prior), replayed=True)
    settings = current_app.config["SETTINGS"]
    submission = check_submission(body, settings)
    job = jobs.create_job(db(), submission.spec, total_steps=submission.plan.total_steps, n_params=submission.plan.n_params,
                          owner=owner(), name=submission.name, experiment=submission.experiment, tags=submission.tags,
                          time_limits=submission.time_limits, mirrored=bool(settings.mlflow_tracking_uri), publishing=True)
    prior = commit_with_key(body, "job", job.id)  # the job, its outbox row and the key in one transaction
    if prior is not None:
        return _job_response(job_or_404(prior), replayed=True)
    if not outbox.publish(job.id, job.hard_time_limit, settings):  # Redis down: the reaper sends it later
        with transaction() as session:
            outbox.unmark_sent(session, [job.id])
    return _job_response(job)


@bp.get("")
def list_jobs():
    """Jobs, newest first, filtered by status, experiment, tag (key or key:value), sweep_id; cursor pages."""
    status = request.args.get("status")
    if status and status not in JobStatus.__members__:
        raise ApiError(400, "Bad request", f"status: must be one of {', '.join(JobStatus)}", kind="bad-query", field="status")
    limit = min(int_arg("limit", 50, minimum=1), MAX_PAGE)
    flt = JobFilter(status=JobStatus(status) if status else None, experiment=request.args.get("experiment"),
                    tag=request.args.get("tag"), sweep_id=int_arg("sweep_id"), owner=owner())
    page = jobs.list_jobs(db(), flt, limit + 1, before_id=int_arg("cursor"))
    body: dict[str, Any] = {"jobs": [job_json(j, with_spec=False) for j in page[:limit]], "next_cursor": None, "links": {}}
    if len(page) > limit:
        cursor = page[limit - 1].id
        body["next_cursor"] = str(cursor)
        args = {k: v for k, v in request.args.items() if k != "cursor"}
        body["links"]["next"] = url_for("jobs.list_jobs", cursor=cursor, **args)
    return body


@bp.get("/<id:job_id>")
def get_job(job_id: int):
    return job_json(job_or_404(job_id))


@bp.post("/<id:job_id>/cancel")
def cancel_job(job_id: int):
    """A queued job never starts; a running one stops within a second and keeps its points."""
    job = job_or_404(job_id)
    if job.status in TERMINAL:
        raise ApiError(409, "Conflict", f"job {job_id} already ended ({job.status})", kind="already-ended", status_now=job.status.value)
    with transaction() as session:
        jobs.cancel(session, job_id)
    db().expire_all()
    return accepted(job_json(job_or_404(job_id)))
