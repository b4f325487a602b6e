"""The reaper's decisions: end or requeue running jobs whose worker cannot be trusted to finish them.

A job past its hard time limit ends `failed` even if its worker still heartbeats (Celery kills that
task shortly after). A job whose worker went silent for HEARTBEAT_TIMEOUT (killed, machine lost,
hung) is requeued with a new outbox row, up to MAX_ATTEMPTS attempts; then it ends `failed` with
reason `worker_lost`. One its user had asked to cancel ends `cancelled`. Each change goes through a
transition of store/jobs.py fenced by the lease the reaper saw, so a worker that heartbeats in the
meantime keeps its job.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..settings import Settings
from . import jobs
from .columns import db_now
from .models import Job, JobStatus


class Reaped(StrEnum):
    requeued = "requeued"
    hard_time_limit = "failed: hard time limit"
    worker_lost = "failed: worker lost"
    cancelled = "cancelled"


def reap(session: Session, settings: Settings) -> dict[int, Reaped]:
    """Decide for every running job; returns {job_id: what was done} for those changed."""
    now = db_now(session)
    silent_since = now - timedelta(seconds=settings.heartbeat_timeout)
    done: dict[int, Reaped] = {}
    running = session.execute(select(Job.id, Job.lease, Job.attempt, Job.attempt_started_at, Job.heartbeat_at,
                                     Job.hard_time_limit, Job.step, Job.cancel_requested)
                              .where(Job.status == JobStatus.running)).all()
    for job_id, lease, attempt, attempt_started, beat, hard, step, cancel_requested in running:
        if hard and attempt_started is not None and attempt_started + timedelta(seconds=hard) < now:
            error = {"reason": "time_limit", "limit": "hard", "seconds": hard, "step": step,
                     "message": f"hard time limit of {hard} s exceeded at step {step} (attempt {attempt})"}
            if jobs.end_abandoned(session, job_id, lease, JobStatus.failed, error):
                done[job_id] = Reaped.hard_time_limit
        elif beat is None or beat < silent_since:
            if cancel_requested:  # its user wanted it stopped anyway
                error = {"reason": "cancelled", "step": step, "message": f"cancelled at step {step} (its worker had stopped responding)"}
                if jobs.end_abandoned(session, job_id, lease, JobStatus.cancelled, error, silent_since):
                    done[job_id] = Reaped.cancelled
            elif attempt >= settings.max_attempts:
                error = {"reason": "worker_lost", "attempts": attempt, "step": step,
                         "message": f"its worker stopped responding (no heartbeat for {settings.heartbeat_timeout:g} s) "
                                    f"on each of {attempt} attempts (MAX_ATTEMPTS={settings.max_attempts})"}
                if jobs.end_abandoned(session, job_id, lease, JobStatus.failed, error, silent_since):
                    done[job_id] = Reaped.worker_lost
            elif jobs.requeue(session, job_id, lease, silent_since):
                done[job_id] = Reaped.requeued
    return done
