"""Training a stack: queued jobs of one sweep that share a shape, claimed together and trained as one
computation (engine/stacked.py), each still its own job with its own lease, heartbeat, recorder,
checkpoints, status and summary.

Every rule of a job trained alone (worker/training.py) holds per member: a cancel, the sweep's
early-stopping rule, the soft time limit, the recording quota or divergence ends that member only,
and the rest train on. A member whose lease is gone (the reaper ended it past its hard time limit,
or it was deleted) stops without writing. The members' points are flushed together, one transaction
for the stack, each job's writes fenced by its own lease; members that end together are finished
together. Members resumed from checkpoints at different steps train as separate stacks.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.spec import SpecError
from engine.stacked import NotStackable, StackedTrainer, StackStep, stack_signature
from engine.training import Trainer
from services.settings import Settings
from services.store import jobs
from services.store.models import JobStatus
from services.store.retry import TRANSIENT, retry_db

from .heartbeat import beating
from .job_steps import (
    StopRules,
    Verdict,
    cancelled,
    early_stopped,
    ended,
    exception_error,
    finish_job,
    job_summary,
    make_trainer,
    out_of_time,
    over_quota,
    train_loop,
)
from .recorder import LeaseLost, Recorder, flush_together
from .sweep_hooks import EarlyStopping, after_job_ended

logger = logging.getLogger(__name__)
LEASE_LOST = "lease lost"


@dataclass
class Member:
    job_id: int
    job: Any  # jobs.Claimed
    trainer: Trainer
    recorder: Recorder
    pruning: EarlyStopping | None
    rules: StopRules
    outcome: str | None = None  # the status it ended with, or why nothing more was written


def train_stack(sessions: sessionmaker[Session], claims: list[tuple[int, Any]], settings: Settings) -> dict[int, str]:
    """Train the claimed jobs as stacks; {job id: final status, or why nothing was done}."""
    outcomes: dict[int, str] = {}
    members: list[Member] = []
    started = time.monotonic()
    for job_id, job in claims:
        try:
            trainer = make_trainer(sessions, job_id, job.spec, job.attempt)
        except Exception as exc:
            logger.exception("job %s could not start", job_id)
            error = {"reason": "invalid_spec", "message": str(exc)} if isinstance(exc, SpecError) else exception_error(exc, "could not start: ")
            retry_db(lambda job_id=job_id, job=job, error=error: finish_job(sessions, job_id, job.lease, JobStatus.failed, error=error),
                     settings.db_retry_seconds, f"job {job_id}: finish")
            outcomes[job_id] = JobStatus.failed.value
            continue
        recorder = Recorder(sessions, job_id, job.lease, settings.flush_seconds, settings.db_retry_seconds, max_bytes=job.reserved_bytes)
        members.append(Member(job_id, job, trainer, recorder, EarlyStopping.for_job(sessions, job, settings),
                              StopRules(settings.checkpoint_every, job.soft_time_limit, started)))
    with ExitStack() as beats:
        for m in members:
            beats.enter_context(beating(sessions, m.job_id, m.job.lease, settings.heartbeat_seconds))
        for m in members:
            if m.job.attempt > 1:
                try:
                    m.recorder.resume(m.trainer.step)
                except LeaseLost:
                    m.outcome = LEASE_LOST
        groups: dict[tuple, list[Member]] = defaultdict(list)
        for m in members:
            if m.outcome is None:
                groups[(stack_signature(m.trainer), m.trainer.step, m.trainer.optimizer.t)].append(m)
        for group in groups.values():
            try:
                _train_group(sessions, group, started, settings)
            except TRANSIENT:  # the database stayed away longer than DB_RETRY_SECONDS: the reaper requeues each from its checkpoint
                logger.exception("stack of jobs %s: database unavailable", [m.job_id for m in group])
                for m in group:
                    m.outcome = m.outcome or "database unavailable"
    outcomes.update({m.job_id: m.outcome or LEASE_LOST for m in members})
    return outcomes


def _train_group(sessions: sessionmaker[Session], group: list[Member], started: float, settings: Settings) -> None:
    try:
        stack = StackedTrainer([m.trainer for m in group]) if len(group) > 1 else None
    except NotStackable:
        stack = None
    if stack is None:  # alone after all: the solo loop, one member after another
        for m in group:
            _train_alone(sessions, m, started, settings)
        return
    by_trainer = {m.trainer: m for m in group}
    last_flush = time.monotonic()
    while stack.members:
        try:
            done = stack.train_step()
        except Exception as exc:  # a bug, not a member's doing: every member fails with it
            logger.exception("stack of jobs %s failed", [by_trainer[t].job_id for t in stack.members])
            leaving = [by_trainer[t] for t in stack.members]
            stack.remove(stack.members)
            _end(sessions, leaving, {m.job_id: (JobStatus.failed, exception_error(exc)) for m in leaving}, done_step=None,
                 started=started, settings=settings)
            return
        for trainer, record in done.records.items():
            by_trainer[trainer].recorder.add(record)
        verdicts: dict[int, Verdict] = {by_trainer[t].job_id: ended(t) for t in done.ended}
        active = [by_trainer[t] for t in stack.members]
        for m in active:  # what this step's records say: over the quota, or pruned by the sweep's rule
            record = done.records.get(m.trainer)
            if record is None:
                continue
            if m.recorder.over_quota:
                verdicts[m.job_id] = over_quota(m.recorder, stack.step)
            elif m.pruning is not None and m.pruning.metric in record.metrics and \
                    m.pruning.should_stop(record.step, record.metrics[m.pruning.metric]):
                verdicts[m.job_id] = early_stopped(m.pruning, record.step)
        checkpoint_due = stack.step % settings.checkpoint_every == 0
        if checkpoint_due or verdicts or time.monotonic() - last_flush >= settings.flush_seconds:
            for m in active:
                if m.job_id not in verdicts and m.rules.soft_limit_passed():
                    verdicts[m.job_id] = out_of_time(m.rules, stack.step)
            staying = [m for m in active if m.job_id not in verdicts]
            saved = {m.recorder: stack.sync(m.trainer).state_dict() for m in staying
                     if checkpoint_due and stack.step < m.trainer.total_steps}
            _progress(staying, done)
            for recorder, result in flush_together([m.recorder for m in staying], saved, settings.db_retry_seconds).items():
                m = next(m for m in staying if m.recorder is recorder)
                if result is None:  # gone from this worker: it stops without writing anything more
                    m.outcome = LEASE_LOST
                    verdicts[m.job_id] = None
                elif result.cancel_requested:
                    verdicts[m.job_id] = cancelled(stack.step)
            last_flush = time.monotonic()
        if verdicts:
            stack.remove([t for t in stack.members if by_trainer[t].job_id in verdicts])
            leaving = [m for m in group if m.job_id in verdicts and verdicts[m.job_id] is not None]
            _end(sessions, leaving, verdicts, done, started, settings)


def _progress(members: list[Member], done: StackStep | None) -> None:
    """Each recorder's progress as of the last step: the member's step and its latest loss."""
    losses = {} if done is None else dict(zip(done.members, done.losses.tolist(), strict=True))
    for m in members:
        m.recorder.step = done.step + 1 if m.trainer in losses and m.trainer.divergence is None else m.trainer.step
        if m.trainer in losses:
            m.recorder.last_loss = losses[m.trainer]


def _end(sessions: sessionmaker[Session], leaving: list[Member], verdicts: dict[int, Verdict | None], done_step: StackStep | None,
         started: float, settings: Settings) -> None:
    """Flush and finish members that left the stack (their shells hold where they stopped), all in one
    transaction each; then let their sweeps move on."""
    if not leaving:
        return
    _progress(leaving, done_step)
    flushed = flush_together([m.recorder for m in leaving], None, settings.db_retry_seconds)
    finishing = [m for m in leaving if flushed[m.recorder] is not None]
    for m in leaving:
        if flushed[m.recorder] is None:
            m.outcome = LEASE_LOST
    seconds = time.monotonic() - started

    def finish_all() -> dict[int, bool]:
        with sessions.begin() as session:
            out = {}
            for m in finishing:
                status, error = verdicts[m.job_id]
                summary = job_summary(session, m.job_id, m.trainer, seconds)
                out[m.job_id] = jobs.finish(session, m.job_id, m.job.lease, status, summary=summary, error=error, model=m.trainer.model())
            return out

    finished = retry_db(finish_all, settings.db_retry_seconds, f"jobs {[m.job_id for m in finishing]}: finish")
    for m in finishing:
        m.outcome = verdicts[m.job_id][0].value if finished[m.job_id] else LEASE_LOST
    for sweep_id in {m.job.sweep_id for m in finishing if finished[m.job_id] and m.job.sweep_id is not None}:
        after_job_ended(sweep_id, settings)


def _train_alone(sessions: sessionmaker[Session], m: Member, started: float, settings: Settings) -> None:
    """One member by the solo loop (a stack of one, or members that could not share a stack)."""
    try:
        verdict = train_loop(m.trainer, m.recorder, m.pruning, m.rules)
    except LeaseLost:
        m.outcome = LEASE_LOST
        return
    except TRANSIENT:
        raise
    except Exception as exc:
        logger.exception("job %s failed", m.job_id)
        verdict = (JobStatus.failed, exception_error(exc))
    _end(sessions, [m], {m.job_id: verdict}, None, started, settings)
