"""The Celery app: `celery -A worker.app worker` (and `celery -A worker.app beat` for periodic tasks)."""

from __future__ import annotations

from celery import Celery

from services.queue import celery_config
from services.settings import get_settings

settings = get_settings()
celery_app = Celery("bplab")
celery_app.conf.update(celery_config(settings))
celery_app.conf.imports = ("worker.tasks",)
# `celery -A worker.app beat`: the MLflow back-fill for jobs whose mirror fell behind, and a sweep top-up.
celery_app.conf.beat_schedule = {
    "mlflow-backfill": {"task": "worker.tasks.mirror_pending", "schedule": settings.mlflow_backfill_seconds,
                        "options": {"queue": settings.queue, "expires": settings.mlflow_backfill_seconds}},
    "sweeps": {"task": "worker.tasks.advance_sweeps", "schedule": 30.0, "options": {"queue": settings.queue, "expires": 30}},
}
