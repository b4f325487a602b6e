"""The glue between the store and the engine: claim a job, train it, record it, finish it. The task
ends when the job's points and final state are committed; MLflow is the MLflow worker's business.

A retried job (its earlier worker vanished) resumes from its checkpoint, after the recorder has cut
the stored points back to the checkpoint's step, so the points and weights equal those of one
uninterrupted run. A job that cannot even start (a spec the engine refuses, a checkpoint that
cannot be read) ends `failed` at once with the reason, instead of waiting for the reaper.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.problem import plan
from engine.spec import SpecError, parse_spec
from engine.stacked import state_bytes
from engine.training import SUMMARY_KEYS, Trainer, summarize
from services.datasets.use import problem_for
from services.jobs.public_errors import describe
from services.settings import Settings
from services.store import checkpoints, fairness, jobs, metrics, outbox
from services.store.db import session_factory
from services.store.models import JobStatus
from services.store.retry import TRANSIENT, retry_db

from .heartbeat import beating
from .recorder import LeaseLost, Recorder
from .sweep_hooks import EarlyStopping, after_job_ended

logger = logging.getLogger(__name__)


def train(job_id: int, settings: Settings) -> str:
    """Train job `job_id` if it is queued (with the queued jobs of its sweep that share its shape, as
    one stack: worker/stack.py). Returns its final status (or why nothing was done)."""
    sessions = session_factory(settings.database_url)
    instead, requeued = retry_db(lambda: _fair_turn(sessions, job_id, settings), settings.db_retry_seconds, f"job {job_id}: fair turn")
    if instead is not None:  # another owner's turn: train theirs (this job's message was sent again)
        return f"job {instead} trained first (another owner's turn): {train_job_now(sessions, instead, settings)}"
    if requeued:
        return "deferred: another owner's job goes first (this job is back in the queue)"
    return train_job_now(sessions, job_id, settings)


def _fair_turn(sessions: sessionmaker[Session], job_id: int, settings: Settings) -> tuple[int | None, bool]:
    """(another owner's job to train in this job's place, whether this job's message was sent again to
    the back of the queue): services/store/fairness.py. A job whose hard time limit is longer than
    this message allows is not swapped in; this job only goes back in the queue, for its message."""
    with sessions.begin() as session:
        instead = fairness.turn_instead(session, job_id, settings.resend_after)
        if instead is None or outbox.send(session, [job_id], settings) == 0:
            return None, False
        limits = jobs.hard_time_limits(session, [job_id, instead])
    mine, theirs = limits.get(job_id), limits.get(instead)
    return (instead if mine is None or (theirs is not None and theirs <= mine) else None), True


def train_job_now(sessions: sessionmaker[Session], job_id: int, settings: Settings) -> str:
    """Claim and train the job (and its stack); its final status, or why nothing was done."""
    claims = retry_db(lambda: _claim(sessions, job_id, settings), settings.db_retry_seconds, f"job {job_id}: claim")
    if len(claims) > 1 or (claims and claims[0][0] != job_id):
        from .stack import train_stack  # (it imports this module)

        outcomes = train_stack(sessions, claims, settings)
        if job_id in outcomes:
            return outcomes[job_id]
        claims = []
    if not claims:  # a duplicate delivery, or a job that ended or was cancelled while queued
        with sessions() as session:
            status = jobs.status_of(session, job_id)
        return f"not started: job is {status.value if status else 'missing'}"
    job = claims[0][1]
    lease, sweep_id, attempt = job.lease, job.sweep_id, job.attempt
    pruning = EarlyStopping.for_job(sessions, job, settings)
    try:
        trainer = make_trainer(sessions, job_id, job.spec, attempt)
    except Exception as exc:
        logger.exception("job %s could not start", job_id)
        error = {"reason": "invalid_spec", "message": str(exc)} if isinstance(exc, SpecError) else exception_error(exc, "could not start: ")
        retry_db(lambda: finish_job(sessions, job_id, lease, JobStatus.failed, error=error), settings.db_retry_seconds,
                 f"job {job_id}: finish")
        return JobStatus.failed.value
    started = time.monotonic()  # duration_seconds: the training loop with its recording
    recorder = Recorder(sessions, job_id, lease, settings.flush_seconds, settings.db_retry_seconds, max_bytes=job.reserved_bytes)
    rules = StopRules(settings.checkpoint_every, job.soft_time_limit, started)
    try:
        with beating(sessions, job_id, lease, settings.heartbeat_seconds):
            if attempt > 1:
                recorder.resume(trainer.step)
            status, error = train_loop(trainer, recorder, pruning, rules)
    except LeaseLost:
        logger.warning("job %s: lease lost, stopping without writing", job_id)
        return "lease lost"
    except TRANSIENT:  # the database stayed away longer than DB_RETRY_SECONDS: not the job's fault
        logger.exception("job %s: database unavailable; the reaper will requeue it from its checkpoint", job_id)
        return "database unavailable"
    except Exception as exc:
        logger.exception("job %s failed", job_id)
        status, error = JobStatus.failed, exception_error(exc)
        try:
            recorder.flush()
        except Exception:
            logger.exception("job %s: could not flush after failure", job_id)

    seconds = time.monotonic() - started  # duration_seconds: the training loop with its recording, to its last flush

    def finish() -> bool:
        return finish_job(sessions, job_id, lease, status, error=error, trainer=trainer, seconds=seconds)

    if not retry_db(finish, settings.db_retry_seconds, f"job {job_id}: finish"):
        logger.warning("job %s: lease lost before it could finish", job_id)
        return "lease lost"
    if sweep_id is not None:
        after_job_ended(sweep_id, settings)
    return status.value


def _claim(sessions: sessionmaker[Session], job_id: int, settings: Settings) -> list[tuple[int, jobs.Claimed]]:
    """The job, with as many queued siblings of its shape as STACK_MAX and STACK_MAX_BYTES allow."""
    with sessions.begin() as session:
        return jobs.claim_stack_for_training(session, job_id, lambda spec: stack_limit(spec, settings))


def stack_limit(spec: dict, settings: Settings) -> int:
    """How many members of this spec's shape one stack may hold: STACK_MAX, fewer when their state
    together would pass STACK_MAX_BYTES (a member too big alone trains alone)."""
    try:
        parsed = parse_spec(spec)
    except SpecError:  # it fails alone, with the reason, when its trainer is built
        return 1
    per_member = state_bytes(parsed, plan(parsed))
    return max(1, min(settings.stack_max, settings.stack_max_bytes // max(per_member, 1)))


def make_trainer(sessions: sessionmaker[Session], job_id: int, spec: dict, attempt: int) -> Trainer:
    """The engine's trainer for the spec (an uploaded dataset's rows read once per process), restored
    from the job's checkpoint on a retry."""
    with sessions() as session:
        trainer = Trainer(problem_for(session, spec))
    if attempt > 1:
        with sessions() as session:
            checkpoint = checkpoints.load(session, job_id)
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint)
            logger.info("job %s: attempt %s resumes from its checkpoint at step %s", job_id, attempt, trainer.step)
    return trainer


def exception_error(exc: BaseException, prefix: str = "") -> dict[str, str]:
    """A failure as the job's `error` shows it (the traceback goes to the worker's log, where it is logged)."""
    return {"reason": "exception", "message": f"{prefix}{describe(exc)}"}


def finish_job(sessions: sessionmaker[Session], job_id: int, lease: str, status: JobStatus, *, error: dict | None,
            trainer: Trainer | None = None, seconds: float | None = None) -> bool:
    with sessions.begin() as session:
        summary = job_summary(session, job_id, trainer, seconds) if trainer is not None else None
        return jobs.finish(session, job_id, lease, status, summary=summary, error=error,
                           model=trainer.model() if trainer is not None else None)


@dataclass(frozen=True)
class StopRules:
    """When the training loop checkpoints, and when it must stop (the soft time limit)."""

    checkpoint_every: int
    soft_seconds: int | None
    started: float  # time.monotonic() when this attempt began training

    def soft_limit_passed(self) -> bool:
        return self.soft_seconds is not None and time.monotonic() - self.started > self.soft_seconds


Verdict = tuple[JobStatus, dict[str, Any] | None]


def cancelled(step: int) -> Verdict:
    return JobStatus.cancelled, {"reason": "cancelled", "message": f"cancelled at step {step}"}


def over_quota(recorder: Recorder, step: int) -> Verdict:
    return JobStatus.failed, {"reason": "quota", "step": step, "bytes": recorder.recorded_bytes,
                              "message": f"recorded {recorder.recorded_bytes:,} bytes by step {step}, over the "
                                         f"{recorder.max_bytes:,} it reserved within the owner's MAX_OWNER_BYTES"}


def out_of_time(rules: StopRules, step: int) -> Verdict:
    return JobStatus.failed, {"reason": "time_limit", "limit": "soft", "seconds": rules.soft_seconds, "step": step,
                              "message": f"soft time limit of {rules.soft_seconds} s exceeded at step {step}"}


def early_stopped(pruning: EarlyStopping, step: int) -> Verdict:
    return JobStatus.cancelled, {"reason": "early_stopped", "message": f"stopped early by the sweep's {pruning.rule} rule at step {step}"}


def ended(trainer: Trainer) -> Verdict:
    """How a trainer that ran out of steps (or diverged) ended."""
    if trainer.divergence is not None:
        return JobStatus.diverged, {"reason": "diverged", **trainer.divergence.as_dict()}
    return JobStatus.succeeded, None


def train_loop(trainer: Trainer, recorder: Recorder, pruning: EarlyStopping | None, rules: StopRules) -> Verdict:
    for record in trainer:
        recorder.add(record)
        checkpoint_due = trainer.step % rules.checkpoint_every == 0 and trainer.step < trainer.total_steps
        if checkpoint_due and recorder.flush(checkpoint=trainer.state_dict()).cancel_requested:
            return cancelled(trainer.step)
        if recorder.over_quota:
            recorder.flush()
            return over_quota(recorder, trainer.step)
        if rules.soft_limit_passed():
            recorder.flush()
            return out_of_time(rules, trainer.step)
        if pruning is not None and pruning.metric in record.metrics and pruning.should_stop(record.step, record.metrics[pruning.metric]):
            recorder.flush()
            return early_stopped(pruning, record.step)
        if recorder.due() and recorder.flush().cancel_requested:
            return cancelled(trainer.step)
    recorder.flush()
    return ended(trainer)


def job_summary(session: Session, job_id: int, trainer: Trainer, seconds: float) -> dict[str, Any]:
    """Final and best loss and the last epoch's figures, from the points as stored."""
    summary = summarize({key: values for key, (_, values) in metrics.read(session, job_id, list(SUMMARY_KEYS)).items()})
    summary.update(steps_completed=trainer.step, total_steps=trainer.total_steps,
                   duration_seconds=round(seconds, 3))
    if trainer.divergence is None:  # the model as it ended, on the whole training and validation sets
        summary.update(trainer.final_model_figures())
    if trainer.problem.spec.data.classes is not None:  # an uploaded dataset's labels, in the order of the outputs
        summary["classes"] = list(trainer.problem.spec.data.classes)
    return summary
