"""`celery -A worker.maintenance worker -B`: Celery beat plus a worker for the periodic tasks only
(reaper and outbox, MLflow back-fill, sweep top-up). Run exactly one."""

from __future__ import annotations

from .app import celery_app, settings

celery_app.conf.task_default_queue = settings.maintenance_queue
app = celery_app
