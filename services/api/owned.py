"""The caller's own jobs and sweeps by id: another owner's is as absent as a missing one (404)."""

from __future__ import annotations

from services.store import jobs
from services.store.models import Job, Sweep

from .auth import owner
from .errors import ApiError
from .request_session import db


def job_or_404(job_id: int) -> Job:
    job = jobs.get_job(db(), job_id, owner())
    if job is None:
        raise ApiError("not-found", f"no job {job_id}")
    return job


def sweep_or_404(sweep_id: int) -> Sweep:
    sweep = db().get(Sweep, sweep_id)
    if sweep is None or sweep.owner != owner():
        raise ApiError("not-found", f"no sweep {sweep_id}")
    return sweep
