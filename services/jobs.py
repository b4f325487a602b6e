"""Jobs in the store: create, read, list, and every status transition.

The job's state machine: queued -> running -> succeeded | diverged | failed | cancelled (and
queued -> cancelled). Each transition is one conditional UPDATE here; nothing else writes `status`.
A running job holds a lease token: the worker's writes are fenced by it, so a worker that lost its
job (requeued after a crash) cannot write over the new attempt.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from .models import TERMINAL, Job, JobPayload, JobStatus, JobTag, utcnow


def create_job(session: Session, spec: dict[str, Any], *, total_steps: int, n_params: int, name: str | None = None,
               experiment: str = "default", tags: dict[str, str] | None = None, sweep_id: int | None = None,
               sweep_trial: int | None = None, sweep_seed: int | None = None, sweep_params: dict | None = None) -> Job:
    """Insert a queued job (the caller commits)."""
    job = Job(payload=JobPayload(spec=spec), name=name, experiment=experiment or "default", sweep_id=sweep_id,
              sweep_trial=sweep_trial, sweep_seed=sweep_seed, sweep_params=sweep_params, status=JobStatus.queued.value,
              total_steps=total_steps, n_params=n_params, created_at=utcnow())
    job.tags = [JobTag(key=k, value=v) for k, v in sorted((tags or {}).items())]
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


@dataclass
class JobFilter:
    status: str | None = None
    experiment: str | None = None
    tag: str | None = None  # "key" or "key:value"
    sweep_id: int | None = None


def list_jobs(session: Session, flt: JobFilter, limit: int, before_id: int | None = None) -> list[Job]:
    """Newest first; `before_id` is the cursor (the last id of the previous page)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if flt.status:
        query = query.where(Job.status == flt.status)
    if flt.experiment:
        query = query.where(Job.experiment == flt.experiment)
    if flt.sweep_id is not None:
        query = query.where(Job.sweep_id == flt.sweep_id)
    if flt.tag:
        key, _, value = flt.tag.partition(":")
        cond = (JobTag.job_id == Job.id) & (JobTag.key == key)
        if value:
            cond &= JobTag.value == value
        query = query.where(exists().where(cond))
    if before_id is not None:
        query = query.where(Job.id < before_id)
    return list(session.scalars(query))


# -- transitions -----------------------------------------------------------------------------------

def claim(session: Session, job_id: int) -> str | None:
    """queued -> running with a new lease; the lease token, or None if the job is not queued."""
    lease = str(uuid.uuid4())
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued.value)
        .values(status=JobStatus.running.value, lease=lease, attempt=Job.attempt + 1, started_at=now, heartbeat_at=now)
    )
    session.commit()
    return lease if result.rowcount == 1 else None


def progress(session: Session, job_id: int, lease: str, step: int, last_loss: float | None) -> bool | None:
    """Record progress under the lease (the caller commits with the points it writes).

    Returns whether a cancel was requested, or None when the lease was lost."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease == lease, Job.status == JobStatus.running.value)
        .values(step=step, last_loss=last_loss, heartbeat_at=utcnow())
    )
    if result.rowcount != 1:
        return None
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish(session: Session, job_id: int, lease: str, status: JobStatus, *, summary: dict | None = None,
           error: dict | None = None, model: dict | None = None) -> bool:
    """running -> a terminal status, under the lease; False if the lease was lost."""
    assert status in TERMINAL
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease == lease, Job.status == JobStatus.running.value)
        .values(status=status.value, summary=summary, error=error, finished_at=utcnow(), lease=None)
    )
    if result.rowcount == 1 and model is not None:
        session.execute(update(JobPayload).where(JobPayload.job_id == job_id).values(model=model))
    session.commit()
    return result.rowcount == 1


def cancel(session: Session, job_id: int) -> str:
    """Cancel: a queued job at once (it never starts), a running one by flag (its worker stops
    within a second and keeps what it recorded). Returns the job's status afterwards."""
    now = utcnow()
    done = session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.queued.value)
        .values(status=JobStatus.cancelled.value, finished_at=now, error={"reason": "cancelled", "message": "cancelled before it started"})
    )
    if done.rowcount == 0:
        session.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.running.value).values(cancel_requested=True))
    session.commit()
    return session.scalar(select(Job.status).where(Job.id == job_id))
