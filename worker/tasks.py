"""Thin tasks: take an id, call the glue that does the work."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from services.settings import get_settings

from sqlalchemy import select

from services import dispatch, jobs, mirror
from services.db import session_factory
from services.models import Sweep

from .app import celery_app
from .mlflow_mirror import mirror_job
from .run_job import run_job
from .sweep_glue import advance_sweep_and_mirror

logger = get_task_logger(__name__)


@celery_app.task(name="worker.tasks.train_job")
def train_job(job_id: int) -> str:
    """Train job `job_id` if it is still queued; returns the job's final status."""
    outcome = run_job(job_id, get_settings())
    logger.info("job %s: %s", job_id, outcome)
    return outcome


@celery_app.task(name="worker.tasks.mirror_pending")
def mirror_pending() -> dict[int, str]:
    """Back-fill MLflow for ended jobs whose mirror is behind (run periodically by Celery beat)."""
    settings = get_settings()
    if not settings.mlflow_tracking_uri:
        return {}
    with session_factory(settings.database_url)() as session:
        job_ids = mirror.jobs_to_backfill(session)
    return {job_id: mirror_job(job_id, settings) for job_id in job_ids}


@celery_app.task(name="worker.tasks.advance_sweeps")
def advance_sweeps() -> list[int]:
    """Top up running sweeps (a safety net: workers advance a sweep whenever one of its jobs ends)."""
    settings = get_settings()
    with session_factory(settings.database_url)() as session:
        running = list(session.scalars(select(Sweep.id).where(Sweep.status == "running")))
    for sweep_id in running:
        advance_sweep_and_mirror(sweep_id, settings)
    return running


@celery_app.task(name="worker.tasks.reap_and_dispatch")
def reap_and_dispatch() -> dict:
    """Requeue or end jobs whose worker vanished or that overran their hard time limit, then hand the
    outbox's jobs to the broker (run every REAPER_SECONDS by Celery beat)."""
    settings = get_settings()
    with session_factory(settings.database_url)() as session:
        reaped = jobs.reap(session, settings)
        for job_id, action in reaped.items():
            logger.warning("reaper: job %s %s", job_id, action)
        requeued = [job_id for job_id, action in reaped.items() if action == jobs.REQUEUED]
        sent = dispatch.send(session, requeued, settings) + dispatch.send_pending(session, settings)
    return {"reaped": {str(k): v for k, v in reaped.items()}, "sent": sent}
