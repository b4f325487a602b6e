"""`celery -A worker.mirror_worker worker`: the MLflow worker, on `<queue>.mlflow` only. It writes
every run from the store (Celery beat, in the maintenance worker, schedules its passes); scale it
like the training workers, one job's run is written by one of them at a time."""

from __future__ import annotations

from .app import celery_app, settings

celery_app.conf.task_default_queue = settings.mlflow_queue
app = celery_app
