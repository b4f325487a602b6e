"""Thin tasks: take an id, call the glue that does the work."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from services.settings import get_settings

from services import mirror
from services.db import session_factory

from .app import celery_app
from .mlflow_mirror import mirror_job
from .run_job import run_job

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
