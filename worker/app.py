"""The Celery app the workers run, one kind of worker per queue.

`celery -A worker.app worker` trains jobs (the training queue). `celery -A worker.maintenance worker
-B` runs Celery beat and the periodic work it schedules on a queue of its own (the reaper and the
outbox, the sweep top-up, webhook deliveries), so it never waits behind training. `celery -A worker.mirror_worker worker`
writes MLflow from the store (`<queue>.mlflow`), so training never waits for MLflow.
"""

from __future__ import annotations

from celery import Celery

from services.broker.celery_config import celery_config
from services.settings import get_settings

settings = get_settings()
celery_app = Celery("bplab")
celery_app.conf.update(celery_config(settings))
celery_app.conf.imports = ("worker.tasks",)


def _periodic(task: str, seconds: float, queue: str) -> dict:
    # `expires`: a tick that waited longer than its period is dropped; the next one does the same work.
    return {"task": task, "schedule": seconds, "options": {"queue": queue, "expires": seconds}}


SWEEP_TOP_UP_SECONDS = 30.0
celery_app.conf.beat_schedule = {
    "reaper-and-outbox": _periodic("worker.tasks.reap_and_dispatch", settings.reaper_seconds, settings.maintenance_queue),
    "sweeps": _periodic("worker.tasks.advance_sweeps", SWEEP_TOP_UP_SECONDS, settings.maintenance_queue),
    "webhooks": _periodic("worker.tasks.deliver_webhooks", settings.webhook_seconds, settings.maintenance_queue),
}
if settings.mlflow_tracking_uri:
    celery_app.conf.beat_schedule["mlflow"] = _periodic("worker.tasks.mirror_to_mlflow", settings.mlflow_flush_seconds,
                                                        settings.mlflow_queue)
