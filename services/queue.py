"""The Celery configuration both the API (producer) and the worker (consumer) use.

Messages carry job ids only, serialized as JSON (no pickle anywhere); tasks are acknowledged
after they finish (`acks_late`), so a worker that dies mid-task leaves the message to be redelivered.
"""

from __future__ import annotations

import functools

from celery import Celery

from .settings import Settings, get_settings

TRAIN_TASK = "worker.tasks.train_job"


def celery_config(settings: Settings) -> dict:
    return {
        "broker_url": settings.redis_url,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "event_serializer": "json",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.queue,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": 3600},
        "worker_hijack_root_logger": False,
    }


@functools.lru_cache(maxsize=4)
def producer(settings: Settings | None = None) -> Celery:
    """A Celery app used only to send tasks by name (the API never imports task code)."""
    app = Celery("bplab-api")
    app.conf.update(celery_config(settings or get_settings()))
    return app


def enqueue_training(job_id: int, settings: Settings | None = None) -> None:
    """Hand `train_job(job_id)` to the broker."""
    settings = settings or get_settings()
    producer(settings).send_task(TRAIN_TASK, args=[job_id], queue=settings.queue)
