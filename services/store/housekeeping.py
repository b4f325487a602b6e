"""A user's housekeeping on jobs that exist: rename and retag, archive and restore an experiment,
delete. Each leaves the MLflow worker a note (`mirror_meta_stale`, an `mlflow_deletions` row) rather
than calling MLflow: the store is the log, MLflow follows it."""

from __future__ import annotations

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

from ..jobs.metadata import MAX_TAGS
from . import idempotency_keys, quota
from .columns import utcnow
from .models import TERMINAL, Job, JobTag, MirrorState, MlflowDeletion
from .upsert import insert_missing

_PLAIN = {"synchronize_session": False}


class TooManyTags(ValueError):
    """A change that would leave a job with more than MAX_TAGS tags."""


def set_metadata(session: Session, job: Job, *, name: str | None = None, clear_name: bool = False,
                 tags: dict[str, str | None] | None = None) -> None:
    """Rename (`clear_name` removes the name) and change tags (a None value removes the tag). The tag
    limit holds for what the job ends up with, however many requests built it: the row is locked
    (PostgreSQL; SQLite's writes are serial) and TooManyTags raised before anything changes."""
    session.execute(select(Job.id).where(Job.id == job.id).with_for_update())
    session.refresh(job, ["tags"])
    after = {t.key for t in job.tags} | {k for k, v in (tags or {}).items() if v is not None}
    after -= {k for k, v in (tags or {}).items() if v is None}
    if len(after) > MAX_TAGS:
        raise TooManyTags(f"the job would hold {len(after)} tags, over {MAX_TAGS}: remove some (a null value removes a tag)")
    if name is not None or clear_name:
        job.name = name
    for key, value in (tags or {}).items():
        current = next((t for t in job.tags if t.key == key), None)
        if value is None:
            if current is not None:
                job.tags.remove(current)
        elif current is None:
            job.tags.append(JobTag(key=key, value=value))
        else:
            current.value = value
    _mirror_again(job)
    session.flush()


def _mirror_again(job: Job) -> None:
    if job.mirror_state is not MirrorState.disabled:
        job.mirror_meta_stale = True


def set_archived(session: Session, owner: str, experiment: str, archived: bool) -> tuple[int, int]:
    """Archive (or restore) the owner's ended jobs in an experiment: `(changed, not ended)`. Jobs
    still queued or running are left as they are."""
    mine = (Job.owner == owner, Job.experiment == experiment)
    changed = session.execute(update(Job).where(*mine, Job.status.in_(TERMINAL), Job.archived != archived)
                              .values(archived=archived, mirror_meta_stale=Job.mirror_state != MirrorState.disabled),
                              execution_options=_PLAIN).rowcount
    running = session.scalar(select(func.count()).select_from(Job).where(*mine, Job.status.not_in(TERMINAL)))
    return changed, running


def experiments(session: Session, owner: str) -> list[dict]:
    """The owner's experiments with their job counts: all, archived, not ended; most recent first."""
    rows = session.execute(select(Job.experiment, func.count(), func.sum(case((Job.archived, 1), else_=0)),
                                  func.sum(case((Job.status.not_in(TERMINAL), 1), else_=0)), func.max(Job.created_at))
                           .where(Job.owner == owner).group_by(Job.experiment).order_by(func.max(Job.id).desc()))
    return [{"name": name, "jobs": n, "archived_jobs": int(archived or 0), "active_jobs": int(active or 0), "last_created_at": last}
            for name, n, archived, active, last in rows]


def delete_job(session: Session, job: Job) -> None:
    """Remove the job with everything it recorded (points, arrays, checkpoint, outbox row: by
    cascade), give its recording reservation back to the owner's quota and leave its MLflow run for
    the MLflow worker to delete. A worker still training it finds its lease gone at its next write
    and stops without writing anything more."""
    if job.mlflow_run_id is not None:
        insert_missing(session, MlflowDeletion, {"run_id": job.mlflow_run_id, "requested_at": utcnow()}, ["run_id"])
    quota.release(session, job.owner, job.reserved_bytes)
    idempotency_keys.forget(session, "job", job.id)
    session.execute(delete(Job).where(Job.id == job.id), execution_options=_PLAIN)
    session.expunge(job)


def pending_deletions(session: Session, limit: int) -> list[str]:
    return list(session.scalars(select(MlflowDeletion.run_id).order_by(MlflowDeletion.requested_at).limit(limit)))


def deletion_done(session: Session, run_id: str) -> None:
    session.execute(delete(MlflowDeletion).where(MlflowDeletion.run_id == run_id))
