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

from sqlalchemy.orm import Session, sessionmaker

from engine.problem import plan
from engine.spec import SpecError, parse_spec
from engine.stacked import state_bytes
from services.settings import Settings
from services.store import fairness, jobs, outbox
from services.store.db import session_factory
from services.store.models import JobStatus
from services.store.retry import TRANSIENT, retry_db

from .heartbeat import beating
from .job_steps import StopRules, exception_error, finish_job, make_trainer, train_loop
from .recorder import LeaseLost, Recorder
from .stack import train_stack
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
