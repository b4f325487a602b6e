"""The Celery configuration the API (producer) and the workers (consumers) share.

Messages carry job ids only, serialized as JSON (no pickle anywhere); tasks are acknowledged
after they finish (`acks_late`), so a worker that dies mid-task leaves the message to be redelivered.

Each worker process holds one message beyond the one it runs (prefetch 2), so a short job follows
another without a round trip to Redis. A message not acknowledged within VISIBILITY_SECONDS (its
worker was killed holding it, or its job simply runs long) is delivered again; that costs nothing:
a job is claimed with a compare-and-set, so a second delivery of a running or ended job does nothing.
"""

from __future__ import annotations

import functools

from celery import Celery

from ..settings import Settings

TRAIN_TASK = "worker.tasks.train_job"
COMPUTE_TASK = "worker.tasks.compute_for_job"
PREFETCH = 2
VISIBILITY_SECONDS = 60


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
        "worker_prefetch_multiplier": PREFETCH,
        "task_default_queue": settings.bplab_queue,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_SECONDS},
        "worker_hijack_root_logger": False,
    }


@functools.lru_cache(maxsize=4)
def producer(settings: Settings) -> Celery:
    """A Celery app used only to send tasks by name (the API never imports task code).

    It fails fast when the broker is down (one quick reconnect, no publish retries): the job is
    already safe in the outbox, and a request must not hang on Redis."""
    app = Celery("bplab-producer")
    app.conf.update(celery_config(settings))
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "max_retries": 1, "interval_start": 0,
                                         "interval_step": 0.2, "socket_connect_timeout": 2, "socket_timeout": 5}
    return app


def enqueue_training(job_id: int, settings: Settings, hard_time_limit: int | None = None) -> None:
    """Hand `train_job(job_id)` to the broker once; raises if the broker does not take it."""
    options = {"time_limit": hard_time_limit} if hard_time_limit else {}
    producer(settings).send_task(TRAIN_TASK, args=[job_id], queue=settings.bplab_queue, retry=False, **options)


def enqueue_computation(computation_id: int, settings: Settings) -> None:
    """Hand `compute_for_job(computation_id)` to the training workers (it is training's kind of work: a replay)."""
    producer(settings).send_task(COMPUTE_TASK, args=[computation_id], queue=settings.bplab_queue, retry=False)


def queued_messages(settings: Settings) -> int:
    """Messages waiting in the training queue (not those a worker holds)."""
    with producer(settings).connection_for_write() as conn:
        return conn.default_channel.queue_declare(queue=settings.bplab_queue, durable=True, auto_delete=False).message_count
