"""The one job loop: claim a job (with the queued jobs of its sweep that share its shape), train
them as one engine trainer of K ≥ 1 members, record each, and end each member by the same rules
through one finish path. A job trained alone is a trainer of one member here too. The task ends when
the jobs' points and final states are committed; MLflow is the MLflow worker's business.

Every rule holds per member: a cancel, the sweep's early-stopping rule, the soft time limit (checked
at every step), the recording quota, divergence, or a lost lease ends that member only, and the rest
train on. Each member keeps its own lease, heartbeat, recorder, checkpoints, status and summary; the
members' points are flushed together, one transaction for the trainer, each job's writes fenced by
its own lease, and members that end together are finished together. A retried job (its earlier
worker vanished) resumes from its checkpoint, after its recorder has cut the stored points back to
the checkpoint's step; members resumed at different steps train as separate trainers. A job that
cannot even start (a spec the engine refuses, a checkpoint that cannot be read) ends `failed` at
once with the reason, instead of waiting for the reaper.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.problem import plan
from engine.spec import SpecError, parse_spec
from engine.stacking import state_bytes
from engine.training import StackStep, Trainer
from services.settings import Settings
from services.store import fairness, jobs, outbox
from services.store.db import session_factory
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
)
from .recorder import LeaseLost, Recorder, flush_together
from .sweep_hooks import EarlyStopping, after_job_ended

logger = logging.getLogger(__name__)
LEASE_LOST = "lease lost"


def train(job_id: int, settings: Settings) -> str:
    """Train job `job_id` if it is queued (with the queued jobs of its sweep that share its shape, as
    one trainer). Returns its final status (or why nothing was done)."""
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
    """Claim and train the job (and the members that share its trainer); its final status, or why nothing was done."""
    claims = retry_db(lambda: _claim(sessions, job_id, settings), settings.db_retry_seconds, f"job {job_id}: claim")
    outcomes = train_claimed(sessions, claims, settings) if claims else {}
    if job_id in outcomes:
        return outcomes[job_id]
    with sessions() as session:  # a duplicate delivery, or a job that ended or was cancelled while queued
        status = jobs.status_of(session, job_id)
    return f"not started: job is {status.value if status else 'missing'}"


@dataclass
class Run:
    """A claimed job as this worker trains it: its trainer of one (until it joins a stack, and again
    once it has left it), recorder, rules and how it ended."""

    job_id: int
    job: Any  # jobs.Claimed
    trainer: Trainer
    recorder: Recorder
    pruning: EarlyStopping | None
    rules: StopRules
    outcome: str | None = None  # the status it ended with, or why nothing more was written


def train_claimed(sessions: sessionmaker[Session], claims: list[tuple[int, Any]], settings: Settings) -> dict[int, str]:
    """Train the claimed jobs; {job id: final status, or why nothing was done}."""
    outcomes: dict[int, str] = {}
    runs: list[Run] = []
    started = time.monotonic()  # duration_seconds: the training loop with its recording
    for job_id, job in claims:
        try:
            trainer = make_trainer(sessions, job_id, job.spec, job.attempt, job.forked)
        except Exception as exc:
            logger.exception("job %s could not start", job_id)
            error = {"reason": "invalid_spec", "message": str(exc)} if isinstance(exc, SpecError) else exception_error(exc, "could not start: ")
            done = retry_db(lambda job_id=job_id, job=job, error=error: finish_job(sessions, job_id, job.lease, JobStatus.failed, error=error),
                            settings.db_retry_seconds, f"job {job_id}: finish")
            outcomes[job_id] = JobStatus.failed.value if done else LEASE_LOST
            continue
        recorder = Recorder(sessions, job_id, job.lease, settings.flush_seconds, settings.db_retry_seconds, max_bytes=job.reserved_bytes)
        runs.append(Run(job_id, job, trainer, recorder, EarlyStopping.for_job(sessions, job, settings),
                        StopRules(settings.checkpoint_every, job.soft_time_limit, started)))
    with ExitStack() as beats:
        for run in runs:
            beats.enter_context(beating(sessions, run.job_id, run.job.lease, settings.heartbeat_seconds))
        for run in runs:
            if run.job.attempt > 1 or run.trainer.step > 0:  # a retry, or a fork starting at its parent's step
                try:
                    run.recorder.resume(run.trainer.step)
                except LeaseLost:
                    run.outcome = LEASE_LOST
        groups: dict[tuple, list[Run]] = defaultdict(list)
        for run in runs:
            if run.outcome is None:
                t = run.trainer
                groups[(t.members[0].key, t.step, t.epoch, t.batch_index, t.optimizer.t)].append(run)
        for group in groups.values():
            try:
                _train_group(sessions, group, started, settings)
            except TRANSIENT:  # the database stayed away longer than DB_RETRY_SECONDS: the reaper requeues each from its checkpoint
                logger.exception("jobs %s: database unavailable; the reaper will requeue them from their checkpoints",
                                 [run.job_id for run in group])
                for run in group:
                    run.outcome = run.outcome or "database unavailable"
    outcomes.update({run.job_id: run.outcome or LEASE_LOST for run in runs})
    return outcomes


def _train_group(sessions: sessionmaker[Session], group: list[Run], started: float, settings: Settings) -> None:
    """Train runs of one key and position as one trainer until every member has ended."""
    trainer = group[0].trainer if len(group) == 1 else Trainer.stack([run.trainer for run in group])
    by_member = {run.trainer.members[0]: run for run in group}
    clock = FlushClock(settings.flush_seconds)
    while trainer.members:
        done: StackStep | None = None
        try:
            done = trainer.step_all()
            verdicts = _after_step(trainer, done, by_member, clock, settings)
        except TRANSIENT:
            raise
        except Exception as exc:  # a bug, not a member's doing: every member fails with it
            logger.exception("jobs %s failed", [by_member[m].job_id for m in trainer.members])
            verdicts = {by_member[m].job_id: (JobStatus.failed, exception_error(exc)) for m in trainer.members}
        if verdicts:
            leaving = [m for m in trainer.members if by_member[m].job_id in verdicts]
            for alone in trainer.remove(leaving):
                by_member[alone.members[0]].trainer = alone
            _end(sessions, [by_member[m] for m in leaving if verdicts[by_member[m].job_id] is not None], verdicts, done, started, settings)


FLUSH_COST_SHARE = 5  # a flush waits at least this many times as long as the last one took


@dataclass
class FlushClock:
    """When a trainer's points are next flushed: every FLUSH_SECONDS, or, when a flush takes longer than a
    fifth of that (a big stack's hundred jobs), after five times what the last one took, so that writing
    points never costs more than a fifth of training (a cancel and the pages' progress wait as long)."""

    every: float
    last: float = field(default_factory=time.monotonic)  # when the last flush ended
    took: float = 0.0  # how long it took

    def due(self, now: float) -> bool:
        return now - self.last >= max(self.every, FLUSH_COST_SHARE * self.took)

    def flushed(self, started: float) -> None:
        self.last = time.monotonic()
        self.took = self.last - started


def _after_step(trainer: Trainer, done: StackStep, by_member: dict, clock: FlushClock,
                settings: Settings) -> dict[int, Verdict | None]:
    """Record the step and decide who stops: {job id: verdict, None for a lost lease}; flushes when due."""
    found = False  # a diagnosis begun or ended: flushed now, so its event goes out the moment it is found
    for member, record in done.records.items():
        by_member[member].recorder.add(record)
        if member.diagnoser is not None and (events := member.diagnoser.drain()):
            by_member[member].recorder.diagnoses.extend(events)
            found = True
    for member in done.ended:  # a divergence is a diagnosis too (its member has no record)
        if member.diagnoser is not None and (events := member.diagnoser.drain()):
            by_member[member].recorder.diagnoses.extend(events)
    verdicts: dict[int, Verdict | None] = {by_member[m].job_id: ended(m) for m in done.ended}
    now = time.monotonic()
    for member in trainer.members:  # over the quota, pruned by the sweep's rule, past the soft time limit
        run = by_member[member]
        if run.job_id in verdicts:
            continue
        record = done.records.get(member)
        if record is not None and run.recorder.over_quota:
            verdicts[run.job_id] = over_quota(run.recorder, trainer.step)
        elif record is not None and run.pruning is not None and run.pruning.metric in record.metrics and \
                run.pruning.should_stop(record.step, record.metrics[run.pruning.metric]):
            verdicts[run.job_id] = early_stopped(run.pruning, record.step)
        elif run.rules.soft_limit_passed(now):
            verdicts[run.job_id] = out_of_time(run.rules, trainer.step)
    checkpoint_due = trainer.step % settings.checkpoint_every == 0
    keeping = {m for m in trainer.members if m.problem.kept_every and trainer.step % m.problem.kept_every == 0}
    if not (checkpoint_due or keeping or verdicts or found or clock.due(now)):
        return verdicts
    staying = [(k, by_member[m]) for k, m in enumerate(trainer.members) if by_member[m].job_id not in verdicts]
    saved, kept = {}, {}  # resume checkpoints; states kept for replays (one state_dict serves both)
    for k, run in staying:
        if trainer.step < run.trainer.total_steps and (checkpoint_due or trainer.members[k] in keeping):
            state = trainer.state_dict(k)
            if checkpoint_due:
                saved[run.recorder] = state
            if trainer.members[k] in keeping:
                kept[run.recorder] = state
    _progress([run for _, run in staying], done, trainer.step)
    for recorder, result in flush_together([run.recorder for _, run in staying], saved, settings.db_retry_seconds, kept).items():
        run = next(run for _, run in staying if run.recorder is recorder)
        if result is None:  # gone from this worker: it stops without writing anything more
            run.outcome = LEASE_LOST
            verdicts[run.job_id] = None
        elif result.cancel_requested:
            verdicts[run.job_id] = cancelled(trainer.step)
    clock.flushed(now)
    return verdicts


def _progress(runs: list[Run], done: StackStep | None, step: int | None = None) -> None:
    """Each recorder's progress: its member's step (`step` for members still in the trainer, else where
    its trainer of one stopped) and its latest finite loss."""
    losses = {} if done is None else dict(zip(done.members, done.losses.tolist(), strict=True))
    for run in runs:
        member = run.trainer.members[0]
        run.recorder.step = run.trainer.step if step is None else step
        if member in losses and member.divergence is None:
            run.recorder.last_loss = losses[member]


def _end(sessions: sessionmaker[Session], leaving: list[Run], verdicts: dict[int, Verdict | None], done: StackStep | None,
         started: float, settings: Settings) -> None:
    """Flush and finish members that left the trainer (each a trainer of one, as it stopped), all in one
    transaction each; then let their sweeps move on."""
    if not leaving:
        return
    _progress(leaving, done)
    last = {run.recorder: run.trainer.state_dict() for run in leaving if _keeps_last(run, verdicts[run.job_id])}
    flushed = flush_together([run.recorder for run in leaving], None, settings.db_retry_seconds, last)
    finishing = [run for run in leaving if flushed[run.recorder] is not None]
    for run in leaving:
        if flushed[run.recorder] is None:
            run.outcome = LEASE_LOST
    seconds = time.monotonic() - started  # duration_seconds: the training loop with its recording, to its last flush

    def finish_all() -> dict[int, bool]:
        with sessions.begin() as session:
            out = {}
            for run in finishing:
                status, error = verdicts[run.job_id]
                summary = job_summary(session, run.job_id, run.trainer, seconds)
                out[run.job_id] = jobs.finish(session, run.job_id, run.job.lease, status, summary=summary, error=error, model=run.trainer.model())
            return out

    finished = retry_db(finish_all, settings.db_retry_seconds, f"jobs {[run.job_id for run in finishing]}: finish")
    for run in finishing:
        run.outcome = verdicts[run.job_id][0].value if finished[run.job_id] else LEASE_LOST
        if not finished[run.job_id]:
            logger.warning("job %s: lease lost before it could finish", run.job_id)
    for sweep_id in {run.job.sweep_id for run in finishing if finished[run.job_id] and run.job.sweep_id is not None}:
        after_job_ended(sweep_id, settings)


def _keeps_last(run: Run, verdict: Verdict | None) -> bool:
    """Whether a member's state as it stopped is kept (what `continue` and replays of its last steps start from):
    unless it diverged (nothing finite to go on from), failed with an exception mid-step, or keeps no checkpoints."""
    member = run.trainer.members[0]
    if verdict is None or not member.problem.kept_every or run.trainer.step == 0:
        return False
    status, error = verdict
    return status != JobStatus.diverged and (error or {}).get("reason") != "exception"


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
