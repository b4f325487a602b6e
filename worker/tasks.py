"""Thin tasks: take an id, call the code that does the work, log the outcome. Settings are the
worker's, read once when it started."""

from __future__ import annotations

import functools

import redis
from celery.signals import worker_process_init
from celery.utils.log import get_task_logger
from sqlalchemy import select

from engine import datasets
from services.store import outbox, reaper
from services.store.db import session_factory
from services.store.models import Sweep, SweepStatus
from services.sweeps import study

from . import blas_threads  # noqa: F401  (its signal handlers set each process's BLAS threads)
from .app import celery_app, settings
from .computations import compute
from .mlflow.mirror import mirror_pass
from .sweep_hooks import after_job_ended
from .training import train
from .webhooks import deliver_due

logger = get_task_logger(__name__)
datasets.warm()  # in the parent, before Celery forks its children: no job pays scikit-learn's import


@worker_process_init.connect
def _warm_study_storage(**_: object) -> None:
    """Each pool process builds its Optuna storage (an engine of its own: none is shared across a fork) before its first sweep."""
    study.warm(settings.database_url)


@celery_app.task(name="worker.tasks.deliver_webhooks")
def deliver_webhooks() -> dict[str, int]:
    """Send the webhook deliveries that are due (the maintenance worker's, every WEBHOOK_SECONDS)."""
    return deliver_due(settings)


@celery_app.task(name="worker.tasks.compute_for_job")
def compute_for_job(computation_id: int) -> str:
    """Compute what the API was asked for from an ended job: a loss landscape, a replayed step (a replay of the job)."""
    outcome = compute(computation_id, settings)
    logger.info("computation %s: %s", computation_id, outcome)
    return outcome


@celery_app.task(name="worker.tasks.train_job")
def train_job(job_id: int) -> str:
    """Train job `job_id` if it is still queued; returns the job's final status."""
    outcome = train(job_id, settings)
    logger.info("job %s: %s", job_id, outcome)
    return outcome


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


@celery_app.task(name="worker.tasks.ping")
def ping(reply_to: str, n: int) -> None:
    """Does nothing but answer on a Redis list: what any task costs (bench/service.py measures it as the floor)."""
    _redis().rpush(reply_to, n)


@celery_app.task(name="worker.tasks.mirror_to_mlflow")
def mirror_to_mlflow() -> dict[int, str]:
    """One pass of the MLflow worker: runs of ended jobs, new points of running ones, parent runs of
    ended sweeps (every MLFLOW_FLUSH_SECONDS, on the MLflow queue)."""
    return mirror_pass(settings)


@celery_app.task(name="worker.tasks.advance_sweeps")
def advance_sweeps() -> list[int]:
    """Top up running sweeps (a safety net: workers advance a sweep whenever one of its jobs ends)."""
    with session_factory(settings.database_url)() as session:
        running = list(session.scalars(select(Sweep.id).where(Sweep.status == SweepStatus.running)))
    for sweep_id in running:
        after_job_ended(sweep_id, settings)
    return running


@celery_app.task(name="worker.tasks.reap_and_dispatch")
def reap_and_dispatch() -> dict:
    """Requeue or end jobs whose worker vanished or that overran their hard time limit, then hand the
    outbox's jobs to the broker (run every REAPER_SECONDS by Celery beat)."""
    sessions = session_factory(settings.database_url)
    with sessions.begin() as session:
        reaped = reaper.reap(session, settings)
    for job_id, action in reaped.items():
        logger.warning("reaper: job %s %s", job_id, action.value)
    requeued = [job_id for job_id, action in reaped.items() if action == reaper.Reaped.requeued]
    with sessions.begin() as session:
        sent = outbox.send(session, requeued, settings) + outbox.send_pending(session, settings)
    return {"reaped": {str(k): v.value for k, v in reaped.items()}, "sent": sent}
