"""Jobs in the store: create, read, list, and every status transition.

The job's state machine: queued -> running -> succeeded | diverged | failed | cancelled (and
queued -> cancelled, and running -> queued when the reaper requeues a job whose worker vanished).
Each transition is one conditional UPDATE here; nothing else writes `status`. A running job holds
a lease token: the worker's writes are fenced by it, so a worker that lost its job (requeued after
a crash) cannot write over the new attempt. A queued job has a row in the outbox (`Dispatch`)
until a worker claims it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from .models import LOCAL_OWNER, TERMINAL, Checkpoint, Dispatch, Job, JobPayload, JobStatus, JobTag, utcnow
from .settings import Settings
from .time_limits import TimeLimits


def create_job(session: Session, spec: dict[str, Any], *, total_steps: int, n_params: int, time_limits: TimeLimits | None = None,
               owner: str = LOCAL_OWNER, name: str | None = None, experiment: str = "default", tags: dict[str, str] | None = None,
               sweep_id: int | None = None, sweep_trial: int | None = None, sweep_seed: int | None = None,
               sweep_params: dict | None = None) -> Job:
    """Insert a queued job and its outbox row (the caller commits both in one transaction)."""
    job = Job(payload=JobPayload(spec=spec), owner=owner, name=name, experiment=experiment or "default", sweep_id=sweep_id,
              sweep_trial=sweep_trial, sweep_seed=sweep_seed, sweep_params=sweep_params, status=JobStatus.queued.value,
              total_steps=total_steps, n_params=n_params, created_at=utcnow(),
              soft_time_limit=time_limits and time_limits.soft, hard_time_limit=time_limits and time_limits.hard)
    job.tags = [JobTag(key=k, value=v) for k, v in sorted((tags or {}).items())]
    session.add(job)
    session.flush()
    session.add(Dispatch(job_id=job.id, created_at=utcnow()))
    return job


def get_job(session: Session, job_id: int, owner: str | None = None) -> Job | None:
    """The job, or None when there is none (or it belongs to someone other than `owner`)."""
    job = session.get(Job, job_id)
    if job is None or (owner is not None and job.owner != owner):
        return None
    return job


@dataclass
class JobFilter:
    status: str | None = None
    experiment: str | None = None
    tag: str | None = None  # "key" or "key:value"
    sweep_id: int | None = None
    owner: str | None = None


def list_jobs(session: Session, flt: JobFilter, limit: int, before_id: int | None = None) -> list[Job]:
    """Newest first; `before_id` is the cursor (the last id of the previous page)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if flt.owner is not None:
        query = query.where(Job.owner == flt.owner)
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
    """queued -> running with a new lease (and out of the outbox); the lease token, or None if the
    job is not queued (a duplicate delivery, or a job that ended or another worker holds)."""
    lease = str(uuid.uuid4())
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued.value)
        .values(status=JobStatus.running.value, lease=lease, attempt=Job.attempt + 1, attempt_started_at=now,
                heartbeat_at=now)
    )
    if result.rowcount == 1:
        session.execute(update(Job).where(Job.id == job_id, Job.started_at.is_(None)).values(started_at=now))
        session.execute(delete(Dispatch).where(Dispatch.job_id == job_id))
    session.commit()
    return lease if result.rowcount == 1 else None


def heartbeat(session: Session, job_id: int, lease: str) -> bool:
    """The worker is alive; False when the lease was lost."""
    result = session.execute(update(Job).where(Job.id == job_id, Job.lease == lease, Job.status == JobStatus.running.value)
                             .values(heartbeat_at=utcnow()))
    session.commit()
    return result.rowcount == 1


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
    if result.rowcount == 1:
        session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))
        if model is not None:
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
    else:
        session.execute(delete(Dispatch).where(Dispatch.job_id == job_id))
    session.commit()
    return session.scalar(select(Job.status).where(Job.id == job_id))


# -- the reaper --------------------------------------------------------------------------------------

def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


REQUEUED = "requeued"


def reap(session: Session, settings: Settings) -> dict[int, str]:
    """End or requeue running jobs that overran their hard time limit or whose worker went silent.

    Returns {job_id: what was done}. Every change is conditional on the lease it saw, so a worker
    that heartbeats in the meantime keeps its job."""
    now = utcnow()
    silent_since = now - timedelta(seconds=settings.heartbeat_timeout)
    done: dict[int, str] = {}
    running = session.execute(select(Job.id, Job.lease, Job.attempt, Job.attempt_started_at, Job.heartbeat_at,
                                     Job.hard_time_limit, Job.step, Job.cancel_requested)
                              .where(Job.status == JobStatus.running.value)).all()
    for job_id, lease, attempt, attempt_started, beat, hard, step, cancel_requested in running:
        fence = (Job.id == job_id, Job.lease == lease, Job.status == JobStatus.running.value)
        if hard and attempt_started is not None and _aware(attempt_started) + timedelta(seconds=hard) < now:
            error = {"reason": "time_limit", "limit": "hard", "seconds": hard, "step": step,
                     "message": f"hard time limit of {hard} s exceeded at step {step} (attempt {attempt})"}
            if _end(session, job_id, fence, error, now):
                done[job_id] = "failed: hard time limit"
        elif beat is None or _aware(beat) < silent_since:
            if cancel_requested:  # its user wanted it stopped anyway
                error = {"reason": "cancelled", "step": step, "message": f"cancelled at step {step} (its worker had stopped responding)"}
                if _end(session, job_id, (*fence, _silent(silent_since)), error, now, JobStatus.cancelled):
                    done[job_id] = "cancelled"
            elif attempt >= settings.max_attempts:
                error = {"reason": "worker_lost", "attempts": attempt, "step": step,
                         "message": f"its worker stopped responding (no heartbeat for {settings.heartbeat_timeout:g} s) "
                                    f"on each of {attempt} attempts (MAX_ATTEMPTS={settings.max_attempts})"}
                if _end(session, job_id, (*fence, _silent(silent_since)), error, now):
                    done[job_id] = "failed: worker lost"
            else:
                requeued = session.execute(update(Job).where(*fence, _silent(silent_since))
                                           .values(status=JobStatus.queued.value, lease=None))
                if requeued.rowcount == 1:
                    session.add(Dispatch(job_id=job_id, created_at=now))
                    done[job_id] = REQUEUED
        session.commit()
    return done


def _silent(since: datetime):
    return or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < since)


def _end(session: Session, job_id: int, fence: tuple, error: dict, now: datetime,
         status: JobStatus = JobStatus.failed) -> bool:
    result = session.execute(update(Job).where(*fence).values(status=status.value, error=error, finished_at=now, lease=None))
    if result.rowcount == 1:
        session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))
    return result.rowcount == 1
