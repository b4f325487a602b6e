"""The caller's own jobs and sweeps by id: another owner's is as absent as a missing one (404)."""

from __future__ import annotations

from sqlalchemy import select

from services.store import jobs
from services.store.models import MAX_INT32, Job, Sweep

from .auth import owner
from .errors import ApiError
from .request_session import db


def job_or_404(job_id: int) -> Job:
    job = jobs.get_job(db(), job_id, owner())
    if job is None:
        raise ApiError("not-found", f"no job {job_id}")
    return job


def sweep_or_404(sweep_id: int) -> Sweep:
    sweep = db().scalar(select(Sweep).where(Sweep.id == sweep_id, Sweep.owner == owner())) if 1 <= sweep_id <= MAX_INT32 else None
    if sweep is None:
        raise ApiError("not-found", f"no sweep {sweep_id}")
    return sweep
