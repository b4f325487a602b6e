"""/api/v1/jobs: submit, list, read, cancel, rename and retag, delete, clone."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request, url_for

from engine.spec import JobSpec, SpecError
from services.jobs.metadata import MAX_TAGS, JobSubmission
from services.store import housekeeping, jobs, outbox
from services.store.jobs import JobFilter
from services.store.models import TERMINAL, SweepStatus
from services.store.models import Job as JobRow
from services.store.models import Sweep as SweepRow
from services.sweeps.request import set_path

from ..auth import owner
from ..errors import ApiError
from ..idempotency import IdempotencyHeaders, accepted, commit_with_key, replay_or_none
from ..openapi import operation
from ..owned import job_or_404
from ..representations import job_model
from ..request_session import db, transaction
from ..schemas.common import NoQuery
from ..schemas.jobs import CloneRequest, Job, JobChanges, JobList, JobListQuery, JobQuery
from ..submission import check, dataset_rows, invalid, reserve_quota, resolved

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")
CREATED_HEADERS = {"Location": "the job's URL", "Idempotent-Replayed": "`true` when an earlier request with this key made the job"}
JOB_ID = "<int(min=1, max=2147483647):job_id>"


def _job_response(job: JobRow, replayed: bool = False):
    return accepted(job_model(job), url_for("jobs.get_job", job_id=job.id), replayed)


@bp.post("")
@operation("jobs", ok=Job, status=202, body=JobSubmission, body_kind="invalid-spec", headers=IdempotencyHeaders, query=NoQuery,
           problems=("idempotency-key-reused", "over-limit", "too-many-requests"), response_headers=CREATED_HEADERS)
def submit_job():
    """Submit a job.

    Validated, then stored queued with its outbox row in one transaction and handed to the broker
    (if Redis is down it stays in the outbox and starts later). The answer is the job's state and
    links, not an echo of its spec (`?include=spec` on the job gives it back)."""
    return create(request.get_json(), request.context.json)


def create(body: dict, parsed: JobSubmission | None, forked_from: tuple[int, int] | None = None):
    """Check, reserve, store and send a job (a submission, a clone or a fork: `forked_from` its parent and
    step); replays a repeated Idempotency-Key."""
    prior = replay_or_none(body, "job")
    if prior is not None:
        return _job_response(job_or_404(prior), replayed=True)
    settings = current_app.config["SETTINGS"]
    document = resolved(body)  # an uploaded dataset's reference completed (digest, rows, features, classes)
    submission = check(document, settings, parsed=parsed if document is body else None, raw=dataset_rows(document))
    parsed = submission.parsed
    if forked_from is not None and submission.plan.total_steps <= forked_from[1]:
        counted = "steps" if document.get("steps") is not None else "epochs"
        raise invalid([(counted, f"a fork from step {forked_from[1]:,} must train for more steps than that "
                        f"(this spec has {submission.plan.total_steps:,})")])
    reserve_quota(db(), owner(), submission.record_bytes, settings)
    job = jobs.create_job(db(), submission.spec, total_steps=submission.plan.total_steps, n_params=submission.plan.n_params,
                          owner=owner(), name=parsed.name, experiment=parsed.experiment, tags=parsed.tags,
                          time_limits=submission.time_limits, mirrored=bool(settings.mlflow_tracking_uri), publishing=True,
                          reserved_bytes=submission.record_bytes, forked_from=forked_from)
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

    Filtered by status, experiment, tag (`key` or `key:value`), sweep and text in the name (`q`); archived jobs only
    with `archived=true`. Pages of `limit` jobs follow one another through `next_cursor`."""
    query: JobListQuery = request.context.query
    flt = JobFilter(status=query.status, experiment=query.experiment, tag=query.tag, sweep_id=query.sweep_id, owner=owner(),
                    name_contains=query.q, archived=query.archived, diagnosis=query.diagnosis)
    page = jobs.list_jobs(db(), flt, query.limit + 1, before_id=query.cursor)
    cursor = page[query.limit - 1].id if len(page) > query.limit else None
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    with_params = query.include == "params"
    return JobList(jobs=[job_model(j, with_params=with_params) for j in page[:query.limit]],
                   next_cursor=None if cursor is None else str(cursor),
                   next=None if cursor is None else url_for("jobs.list_jobs", cursor=cursor, **args))


@bp.get(f"/{JOB_ID}")
@operation("jobs", ok=Job, query=JobQuery, problems=("not-found",))
def get_job(job_id: int):
    """A job: status, progress, summary, error, MLflow run and links (with `?include=spec`, its spec; `params`, its flat params)."""
    query: JobQuery = request.context.query
    return job_model(job_or_404(job_id), with_spec=query.include == "spec", with_params=query.include == "params")


@bp.get(f"/{JOB_ID}/spec")
@operation("jobs", ok=JobSpec, query=NoQuery, problems=("not-found",))
def get_job_spec(job_id: int):
    """The job's spec as it was submitted (inline data included)."""
    return job_or_404(job_id).spec


@bp.post(f"/{JOB_ID}/cancel")
@operation("jobs", ok=Job, status=202, query=NoQuery, problems=("not-found", "already-ended"))
def cancel_job(job_id: int):
    """Cancel a job: a queued job never starts; a running one stops at its next write (every FLUSH_SECONDS, 0.5 s by default) and keeps its points."""
    job = job_or_404(job_id)
    if job.status in TERMINAL:
        raise ApiError("already-ended", f"job {job_id} already ended ({job.status})", status_now=job.status.value)
    with transaction() as session:
        jobs.cancel(session, job_id)
    db().expire_all()
    return accepted(job_model(job_or_404(job_id)))


@bp.patch(f"/{JOB_ID}")
@operation("jobs", ok=Job, body=JobChanges, query=NoQuery, problems=("not-found", "over-limit"))
def change_job(job_id: int):
    """Rename a job or change its tags (a null tag value removes the tag); its MLflow run follows."""
    changes: JobChanges = request.context.json
    job = job_or_404(job_id)
    try:
        with transaction() as session:
            housekeeping.set_metadata(session, job, name=changes.name,
                                      clear_name="name" in changes.model_fields_set and changes.name is None, tags=changes.tags)
    except housekeeping.TooManyTags as exc:
        raise ApiError("over-limit", str(exc), field="tags", limit=MAX_TAGS) from None
    return job_model(job_or_404(job_id))


@bp.delete(f"/{JOB_ID}")
@operation("jobs", ok=None, status=204, query=NoQuery, problems=("not-found", "sweep-running", "has-forks"))
def delete_job(job_id: int):
    """Delete a job with everything it recorded; a running one stops at its next write.

    Its recording reservation goes back to the owner's quota and its MLflow run is deleted by the
    MLflow worker. A job of a sweep that is still running is kept (409): cancel the sweep first; so is
    a job that forks start from (409 `has-forks`): their early steps are its."""
    job = job_or_404(job_id)
    if job.sweep_id is not None and db().get(SweepRow, job.sweep_id).status is SweepStatus.running:
        raise ApiError("sweep-running", f"job {job_id} belongs to sweep {job.sweep_id}, which is still running", sweep_id=job.sweep_id)
    forks = jobs.forks_of(db(), job_id)
    if forks:
        raise ApiError("has-forks", f"job {job_id} is the parent of {len(forks)} fork(s): their steps before their fork step are "
                       "its; delete them first", forks=forks[:100])
    with transaction() as session:
        housekeeping.delete_job(session, job)
    return "", 204


@bp.post(f"/{JOB_ID}/clone")
@operation("jobs", ok=Job, status=202, body=CloneRequest, body_kind="invalid-spec", headers=IdempotencyHeaders, query=NoQuery,
           problems=("not-found", "idempotency-key-reused", "over-limit", "too-many-requests"), response_headers=CREATED_HEADERS)
def clone_job(job_id: int):
    """A new job from this one's spec with fields changed by dotted path (`set`), checked like a submission.

    Its experiment, tags and time limits are the original's unless given; it is tagged `cloned_from`."""
    clone: CloneRequest = request.context.json
    return create_derived(job_or_404(job_id), clone.set, clone.model_dump(include=DERIVED_META, exclude_none=True),
                          ("cloned_from", str(job_id)))


DERIVED_META = {"name", "experiment", "tags", "time_limits"}


def create_derived(original: JobRow, changes: dict[str, Any], meta: dict[str, Any], tag: tuple[str, str],
                   forked_from: tuple[int, int] | None = None):
    """A job from another's spec with `changes` by dotted path (a clone, a fork), checked like a submission: its
    experiment, tags and time limits are the original's unless `meta` gives them, its name none unless given, and
    it is tagged `tag`; errors on a changed field are named as sent (`set.optimizer.lr`)."""
    spec = original.spec
    try:
        for path, value in changes.items():
            spec = set_path(spec, path, value, where="set")
    except SpecError as exc:
        raise invalid(exc.errors) from None
    limits = meta.get("time_limits") or {
        k: v for k, v in (("soft_seconds", original.soft_time_limit), ("hard_seconds", original.hard_time_limit)) if v is not None}
    tags = {t.key: t.value for t in original.tags} if meta.get("tags") is None else meta["tags"]
    document = {**spec, "experiment": meta.get("experiment") or original.experiment, "tags": {**tags, tag[0]: tag[1]}}
    if meta.get("name") is not None:
        document["name"] = meta["name"]
    if limits:
        document["time_limits"] = limits
    try:
        return create(document, None, forked_from)
    except ApiError as exc:
        raise as_set_fields(exc, changes) from None


def as_set_fields(exc: ApiError, changed: dict[str, Any]) -> ApiError:
    """A clone's errors on the fields it changed, named as sent: `set.optimizer.lr`."""
    def rename(field: str | None) -> str | None:
        hit = field is not None and any(field == p or field.startswith((p + ".", p + "[")) for p in changed)
        return f"set.{field}" if hit else field
    exc.field = rename(exc.field)
    for error in exc.errors or []:
        error["field"] = rename(error["field"])
    return exc
