"""/api/v1/jobs: submit, list, read, cancel."""

from __future__ import annotations

from flask import Blueprint, current_app, request, url_for

from engine.spec import JobSpec
from services.job_metadata import JobSubmission
from services.store import jobs, outbox
from services.store.jobs import JobFilter
from services.store.models import TERMINAL
from services.store.models import Job as JobRow

from ..auth import owner
from ..errors import ApiError
from ..idempotency import IdempotencyHeaders, accepted, commit_with_key, replay_or_none
from ..openapi import operation
from ..owned import job_or_404
from ..representations import job_model
from ..request_session import db, transaction
from ..schemas.common import NoQuery
from ..schemas.jobs import Job, JobList, JobListQuery, JobQuery
from ..submission import check, reserve_quota

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")
JOB_ID = "<int(min=1, max=2147483647):job_id>"


def _job_response(job: JobRow, replayed: bool = False):
    return accepted(job_model(job), url_for("jobs.get_job", job_id=job.id), replayed)


@bp.post("")
@operation("jobs", ok=Job, status=202, body=JobSubmission, body_kind="invalid-spec", headers=IdempotencyHeaders, query=NoQuery,
           problems=("idempotency-key-reused", "over-limit", "too-many-requests"),
           response_headers={"Location": "the job's URL", "Idempotent-Replayed": "`true` when an earlier request with this key made the job"})
def submit_job():
    """Submit a job.

    Validated, then stored queued with its outbox row in one transaction and handed to the broker
    (if Redis is down it stays in the outbox and starts later). The answer is the job's state and
    links, not an echo of its spec (`?include=spec` on the job gives it back)."""
    body = request.get_json()
    prior = replay_or_none(body, "job")
    if prior is not None:
        return _job_response(job_or_404(prior), replayed=True)
    settings = current_app.config["SETTINGS"]
    parsed: JobSubmission = request.context.json
    submission = check(body, settings, parsed=parsed)
    reserve_quota(db(), owner(), submission.record_bytes, settings)
    job = jobs.create_job(db(), submission.spec, total_steps=submission.plan.total_steps, n_params=submission.plan.n_params,
                          owner=owner(), name=parsed.name, experiment=parsed.experiment, tags=parsed.tags,
                          time_limits=submission.time_limits, mirrored=bool(settings.mlflow_tracking_uri), publishing=True,
                          reserved_bytes=submission.record_bytes)
    prior = commit_with_key(body, "job", job.id)  # the job, its outbox row and the key in one transaction
    if prior is not None:
        return _job_response(job_or_404(prior), replayed=True)
    if not outbox.publish(job.id, job.hard_time_limit, settings):  # Redis down: the reaper sends it later
        with transaction() as session:
            outbox.unmark_sent(session, [job.id])
    return _job_response(job)


@bp.get("")
@operation("jobs", ok=JobList, query=JobListQuery)
def list_jobs():
    """List jobs, newest first.

    Filtered by status, experiment, tag (`key` or `key:value`), sweep and text in the name (`q`); pages of `limit` jobs
    follow one another through `next_cursor`."""
    query: JobListQuery = request.context.query
    flt = JobFilter(status=query.status, experiment=query.experiment, tag=query.tag, sweep_id=query.sweep_id, owner=owner(),
                    name_contains=query.q)
    page = jobs.list_jobs(db(), flt, query.limit + 1, before_id=query.cursor)
    cursor = page[query.limit - 1].id if len(page) > query.limit else None
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    return JobList(jobs=[job_model(j) for j in page[:query.limit]], next_cursor=None if cursor is None else str(cursor),
                   next=None if cursor is None else url_for("jobs.list_jobs", cursor=cursor, **args))


@bp.get(f"/{JOB_ID}")
@operation("jobs", ok=Job, query=JobQuery, problems=("not-found",))
def get_job(job_id: int):
    """A job: status, progress, summary, error, MLflow run and links (with `?include=spec`, its spec)."""
    query: JobQuery = request.context.query
    return job_model(job_or_404(job_id), with_spec=query.include == "spec")


@bp.get(f"/{JOB_ID}/spec")
@operation("jobs", ok=JobSpec, query=NoQuery, problems=("not-found",))
def get_job_spec(job_id: int):
    """The job's spec as it was submitted (inline data included)."""
    return job_or_404(job_id).spec


@bp.post(f"/{JOB_ID}/cancel")
@operation("jobs", ok=Job, status=202, query=NoQuery, problems=("not-found", "already-ended"))
def cancel_job(job_id: int):
    """Cancel a job: a queued job never starts; a running one stops within a second and keeps its points."""
    job = job_or_404(job_id)
    if job.status in TERMINAL:
        raise ApiError("already-ended", f"job {job_id} already ended ({job.status})", status_now=job.status.value)
    with transaction() as session:
        jobs.cancel(session, job_id)
    db().expire_all()
    return accepted(job_model(job_or_404(job_id)))
