"""Thin tasks: take an id, call the glue that does the work."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from services.settings import get_settings

from .app import celery_app
from .run_job import run_job

logger = get_task_logger(__name__)


@celery_app.task(name="worker.tasks.train_job")
def train_job(job_id: int) -> str:
    """Train job `job_id` if it is still queued; returns the job's final status."""
    outcome = run_job(job_id, get_settings())
    logger.info("job %s: %s", job_id, outcome)
    return outcome
