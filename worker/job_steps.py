"""The per-job pieces the job loop (training.py) is made of: a job's trainer of one (restored from its
checkpoint on a retry), the rules that stop it and the verdicts they give, its summary, and how it
is finished."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.replay import Chain, Kept, forked, state_at
from engine.training import SUMMARY_KEYS, SUMMARY_REFERENCE, Member, Trainer, summarize
from services.datasets.use import problem_for
from services.jobs.public_errors import describe
from services.store import checkpoints, jobs, metrics
from services.store.models import JobStatus

from .recorder import Recorder
from .sweep_hooks import EarlyStopping

logger = logging.getLogger(__name__)


def make_trainer(sessions: sessionmaker[Session], job_id: int, spec: dict, attempt: int, may_be_fork: bool = True) -> Trainer:
    """The engine's trainer for the spec (an uploaded dataset's rows read once per process), restored
    from the job's checkpoint on a retry; a fork's (without a checkpoint yet) set at its parent's state
    (`may_be_fork`: False when its claim says it is none, so a sweep's hundred jobs ask nothing more)."""
    with sessions() as session:
        trainer = Trainer(problem_for(session, spec))
        fork = jobs.fork_of(session, job_id) if may_be_fork else None
        parent = None if fork is None else chain_of(session, fork[0], fork[2])
        kept = None if fork is None else kept_of(sessions, session, fork[0])
    checkpoint = None
    if attempt > 1:
        with sessions() as session:
            checkpoint = checkpoints.load(session, job_id)
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint)
            logger.info("job %s: attempt %s resumes from its checkpoint at step %s", job_id, attempt, trainer.step)
    if checkpoint is None and fork is not None:
        started = time.monotonic()
        forked(trainer, state_at(parent, fork[1], kept), parent[-1][0].spec.optimizer.name)
        logger.info("job %s: forked from job %s at step %s (replayed in %.2f s)", job_id, fork[0], fork[1], time.monotonic() - started)
    return trainer


def chain_of(session: Session, job_id: int, spec: dict) -> Chain:
    """The job's lineage for a replay (engine/replay.py): its ancestors' problems from the first, each with the step
    its child was forked at, then its own."""
    chain: Chain = [(problem_for(session, spec), None)]
    while (fork := jobs.fork_of(session, job_id)) is not None:
        job_id, step, parent_spec = fork
        chain.insert(0, (problem_for(session, parent_spec), step))
    return chain


def kept_of(sessions: sessionmaker[Session], session: Session, job_id: int) -> Kept:
    """The states the job's lineage kept, by part of its chain and step, each read from the store when a replay
    starts from it (engine/replay.py)."""
    ids = jobs.lineage(session, job_id)
    steps = checkpoints.kept_steps(session, ids)

    def loader(kept_job: int, step: int) -> Callable[[], dict[str, Any]]:
        def load() -> dict[str, Any]:
            with sessions() as s:
                state = checkpoints.load_kept(s, kept_job, step)
            if state is None:
                raise ValueError(f"step: job {kept_job}'s checkpoint at step {step} was deleted while it was replayed")
            return state
        return load

    return {(part, step): loader(kept_job, step) for part, kept_job in enumerate(ids) for step in steps[kept_job]}


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

    def soft_limit_passed(self, now: float | None = None) -> bool:
        """Past the job's soft time limit, as of `now` (time.monotonic(); read here when not given)."""
        return self.soft_seconds is not None and (time.monotonic() if now is None else now) - self.started > self.soft_seconds


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


def ended(member: Member) -> Verdict:
    """How a member that ran out of steps (or diverged) ended."""
    if member.divergence is not None:
        return JobStatus.diverged, {"reason": "diverged", **member.divergence.as_dict()}
    return JobStatus.succeeded, None


def job_summary(session: Session, job_id: int, trainer: Trainer, seconds: float) -> dict[str, Any]:
    """The model's own figures first, then the last and best epoch figures (from the points as stored),
    in the order docs/job-spec.md lists them."""
    summary = summarize({key: values for key, (_, values) in metrics.read(session, job_id, list(SUMMARY_KEYS)).items()})
    summary.update(steps_completed=trainer.step, total_steps=trainer.total_steps,
                   duration_seconds=round(seconds, 3))
    if trainer.divergence is None:  # the model as it ended, on the whole training and validation sets
        summary.update(trainer.final_model_figures())
    if trainer.problem.spec.data.classes is not None:  # an uploaded dataset's labels, in the order of the outputs
        summary["classes"] = list(trainer.problem.spec.data.classes)
    order = {field: i for i, (field, _, _) in enumerate(SUMMARY_REFERENCE)}
    return dict(sorted(summary.items(), key=lambda item: order.get(item[0], len(order))))
