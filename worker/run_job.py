"""The glue between the store and the engine: claim a job, train it, record it, finish it.

A retried job (its earlier worker vanished) resumes from its checkpoint, after the recorder has cut
the stored points back to the checkpoint's step, so the points and weights equal those of one
uninterrupted run.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from engine.spec import SpecError
from engine.training import Trainer, summarize
from services import checkpoints, jobs, metrics
from services.db import session_factory
from services.models import JobStatus
from services.retry import TRANSIENT, retry_db
from services.settings import Settings

from .heartbeat import Heartbeat
from .mlflow_mirror import LiveMirror, mirror_job
from .sweep_glue import EarlyStopping, advance_sweep_and_mirror
from .recorder import LeaseLost, Recorder

logger = logging.getLogger(__name__)


def run_job(job_id: int, settings: Settings) -> str:
    """Train job `job_id` if it is queued. Returns the final status (or why nothing was done)."""
    sessions = session_factory(settings.database_url)
    lease = retry_db(lambda: _claim(sessions, job_id), settings.db_retry_seconds, f"job {job_id}: claim")
    with sessions() as session:
        if lease is None:  # a duplicate delivery, or a job that ended or was cancelled while queued
            job = jobs.get_job(session, job_id)
            return f"not started: job is {job.status if job else 'missing'}"
        job = jobs.get_job(session, job_id)
        spec, sweep_id, attempt, soft_limit = job.spec, job.sweep_id, job.attempt, job.soft_time_limit
        pruning = EarlyStopping.for_job(session, job, settings)
        checkpoint = checkpoints.load(session, job_id) if attempt > 1 else None
    try:
        trainer = Trainer(spec)
    except SpecError as exc:
        with sessions() as session:
            jobs.finish(session, job_id, lease, JobStatus.failed, error={"reason": "invalid_spec", "message": str(exc)})
        return JobStatus.failed.value
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)
        logger.info("job %s: attempt %s resumes from its checkpoint at step %s", job_id, attempt, trainer.step)
    started = time.monotonic()  # duration_seconds: the training loop with its recording
    recorder = Recorder(sessions, job_id, lease, settings.flush_seconds, settings.db_retry_seconds)
    limits = Limits(settings.checkpoint_every, soft_limit, started)
    try:
        with Heartbeat(sessions, job_id, lease, settings.heartbeat_seconds):
            if attempt > 1:
                recorder.resume(trainer.step)
            with LiveMirror(job_id, settings):
                status, error = _train(trainer, recorder, pruning, limits)
    except LeaseLost:
        logger.warning("job %s: lease lost, stopping without writing", job_id)
        return "lease lost"
    except TRANSIENT:  # the database stayed away longer than DB_RETRY_SECONDS: not the job's fault
        logger.exception("job %s: database unavailable; the reaper will requeue it from its checkpoint", job_id)
        return "database unavailable"
    except Exception as exc:  # the job fails, the worker lives on
        logger.exception("job %s failed", job_id)
        status, error = JobStatus.failed, {"reason": "exception", "message": f"{type(exc).__name__}: {exc}",
                                           "traceback": traceback.format_exc(limit=5)}
        try:
            recorder.flush()
        except Exception:  # noqa: BLE001 - keep the original failure
            logger.exception("job %s: could not flush after failure", job_id)

    def finish() -> bool:
        with sessions() as session:
            return jobs.finish(session, job_id, lease, status, summary=_summary(session, job_id, trainer, started), error=error,
                               model=trainer.model())

    if not retry_db(finish, settings.db_retry_seconds, f"job {job_id}: finish"):
        logger.warning("job %s: lease lost before it could finish", job_id)
        return "lease lost"
    mirror_job(job_id, settings)  # the job has ended; its run gets the last points, artifacts and status
    if sweep_id is not None:
        advance_sweep_and_mirror(sweep_id, settings)
    return status.value


def _claim(sessions, job_id: int) -> str | None:
    with sessions() as session:
        return jobs.claim(session, job_id)


@dataclass(frozen=True)
class Limits:
    """When the training loop checkpoints, and when it must stop."""

    checkpoint_every: int
    soft_seconds: int | None
    started: float  # time.monotonic() when this attempt began training

    def soft_limit_passed(self) -> bool:
        return self.soft_seconds is not None and time.monotonic() - self.started > self.soft_seconds


def _train(trainer: Trainer, recorder: Recorder, pruning: "EarlyStopping | None",
           limits: Limits) -> tuple[JobStatus, dict[str, Any] | None]:
    for record in trainer:
        recorder.add(record)
        if trainer.step % limits.checkpoint_every == 0 and trainer.step < trainer.total_steps:
            if recorder.flush(checkpoint=trainer.state_dict()).cancel_requested:
                return JobStatus.cancelled, {"reason": "cancelled", "message": f"cancelled at step {trainer.step}"}
        if limits.soft_limit_passed():
            recorder.flush()
            return JobStatus.failed, {"reason": "time_limit", "limit": "soft", "seconds": limits.soft_seconds, "step": trainer.step,
                                      "message": f"soft time limit of {limits.soft_seconds} s exceeded at step {trainer.step}"}
        if pruning is not None and pruning.metric in record.metrics and pruning.should_stop(record.step, record.metrics[pruning.metric]):
            recorder.flush()
            return JobStatus.cancelled, {"reason": "early_stopped", "message": f"stopped early by the sweep's "
                                         f"{pruning.rule} rule at step {record.step}"}
        if recorder.due() and recorder.flush().cancel_requested:
            return JobStatus.cancelled, {"reason": "cancelled", "message": f"cancelled at step {trainer.step}"}
    recorder.flush()
    if trainer.divergence is not None:
        return JobStatus.diverged, {"reason": "diverged", **trainer.divergence.as_dict()}
    return JobStatus.succeeded, None


def _summary(session, job_id: int, trainer: Trainer, started: float) -> dict[str, Any]:
    """Final and best loss and the last epoch's figures, from the points as stored."""
    wanted = ["loss", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    series = {k: [[int(s), float(v)] for s, v in zip(*pair)] for k, pair in metrics.read(session, job_id, wanted).items()}
    summary = summarize(series)
    summary.update(steps_completed=trainer.step, total_steps=trainer.total_steps,
                   duration_seconds=round(time.monotonic() - started, 3))
    return summary
