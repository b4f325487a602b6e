"""The glue between the store and the engine: claim a job, train it, record it, finish it."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from engine.spec import SpecError
from engine.training import Trainer, summarize
from services import jobs, metrics
from services.db import session_factory
from services.models import JobStatus
from services.settings import Settings

from .mlflow_mirror import LiveMirror, mirror_job
from .sweep_glue import EarlyStopping, advance_sweep_and_mirror
from .recorder import LeaseLost, Recorder

logger = logging.getLogger(__name__)


def run_job(job_id: int, settings: Settings) -> str:
    """Train job `job_id` if it is queued. Returns the final status (or why nothing was done)."""
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        lease = jobs.claim(session, job_id)
        if lease is None:
            job = jobs.get_job(session, job_id)
            return f"not started: job is {job.status if job else 'missing'}"
        job = jobs.get_job(session, job_id)
        spec, sweep_id = job.spec, job.sweep_id
        pruning = EarlyStopping.for_job(session, job, settings)
    try:
        trainer = Trainer(spec)
    except SpecError as exc:
        with sessions() as session:
            jobs.finish(session, job_id, lease, JobStatus.failed, error={"reason": "invalid_spec", "message": str(exc)})
        return JobStatus.failed.value
    started = time.monotonic()  # duration_seconds: the training loop with its recording
    recorder = Recorder(sessions, job_id, lease, settings.flush_seconds)
    try:
        with LiveMirror(job_id, settings):
            status, error = _train(trainer, recorder, pruning)
    except LeaseLost:
        logger.warning("job %s: lease lost, stopping without writing", job_id)
        return "lease lost"
    except Exception as exc:  # the job fails, the worker lives on
        logger.exception("job %s failed", job_id)
        status, error = JobStatus.failed, {"reason": "exception", "message": f"{type(exc).__name__}: {exc}",
                                           "traceback": traceback.format_exc(limit=5)}
        try:
            recorder.flush()
        except Exception:  # noqa: BLE001 - keep the original failure
            logger.exception("job %s: could not flush after failure", job_id)
    with sessions() as session:
        jobs.finish(session, job_id, lease, status, summary=_summary(session, job_id, trainer, started), error=error,
                    model=trainer.model())
    mirror_job(job_id, settings)  # the job has ended; its run gets the last points, artifacts and status
    if sweep_id is not None:
        advance_sweep_and_mirror(sweep_id, settings)
    return status.value


def _train(trainer: Trainer, recorder: Recorder, pruning: "EarlyStopping | None") -> tuple[JobStatus, dict[str, Any] | None]:
    for record in trainer:
        recorder.add(record)
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
