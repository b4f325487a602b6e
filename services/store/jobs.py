"""Jobs in the store: create, read, list, and every status transition.

The job's state machine: queued -> running -> succeeded | diverged | failed | cancelled (and
queued -> cancelled, and running -> queued when the reaper requeues a job whose worker vanished).
Each transition is one conditional UPDATE here; nothing else writes `status`. A running job holds
a lease token: the worker's writes are fenced by it, so a worker that lost its job (requeued after
a crash) cannot write over the new attempt. A queued job has a row in the outbox until a worker
claims it. Like every store function, none of these commits: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, cast, delete, exists, func, literal, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from ..jobs.time_limits import TimeLimits
from . import fairness, outbox, webhooks
from .columns import db_now
from .models import LOCAL_OWNER, MAX_INT32, TERMINAL, Checkpoint, Diagnosis, Job, JobPayload, JobStatus, JobTag, MirrorState


def create_job(session: Session, spec: dict[str, Any], *, total_steps: int, n_params: int, time_limits: TimeLimits | None = None,
               owner: str = LOCAL_OWNER, name: str | None = None, experiment: str = "default", tags: dict[str, str] | None = None,
               sweep_id: int | None = None, sweep_trial: int | None = None, sweep_seed: int | None = None,
               sweep_params: dict | None = None, mirrored: bool = True, publishing: bool = False, reserved_bytes: int = 0,
               stack_key: str | None = None, forked_from: tuple[int, int] | None = None) -> Job:
    """Insert a queued job and its outbox row; `mirrored`: an MLflow worker will write its run;
    `publishing`: the caller publishes it after the commit (see outbox); `forked_from`: (parent, step) of a fork."""
    job = Job(payload=JobPayload(spec=spec), owner=owner, name=name, experiment=experiment or "default", sweep_id=sweep_id,
              sweep_trial=sweep_trial, sweep_seed=sweep_seed, sweep_params=sweep_params, stack_key=stack_key, status=JobStatus.queued,
              mirror_state=MirrorState.pending if mirrored else MirrorState.disabled,
              total_steps=total_steps, n_params=n_params, created_at=db_now(session), reserved_bytes=reserved_bytes,
              soft_time_limit=time_limits and time_limits.soft, hard_time_limit=time_limits and time_limits.hard,
              dataset_id=(spec.get("data") or {}).get("dataset"),
              forked_from_job=forked_from and forked_from[0], forked_from_step=forked_from and forked_from[1])
    job.tags = [JobTag(key=k, value=v) for k, v in sorted((tags or {}).items())]
    session.add(job)
    session.flush()
    outbox.add(session, job.id, marked_sent=publishing)
    return job


def get_job(session: Session, job_id: int, owner: str | None = None) -> Job | None:
    """The job, or None when there is none (or it belongs to someone other than `owner`). The owner is
    part of the query: another owner's job is never loaded, so it costs what a missing one does; an id
    past the integer columns' range is simply absent."""
    if not 1 <= job_id <= MAX_INT32:
        return None
    if owner is None:
        return session.get(Job, job_id)
    return session.scalar(select(Job).where(Job.id == job_id, Job.owner == owner))


@dataclass
class JobFilter:
    status: JobStatus | None = None
    experiment: str | None = None
    tag: str | None = None  # "key" or "key:value"
    sweep_id: int | None = None
    owner: str | None = None
    name_contains: str | None = None  # case-insensitive
    archived: bool | None = False  # None: archived or not
    diagnosis: str | None = None  # a diagnosis kind the job has


def list_jobs(session: Session, flt: JobFilter, limit: int, before_id: int | None = None) -> list[Job]:
    """Newest first; `before_id` is the cursor (the last id of the previous page)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if flt.owner is not None:
        query = query.where(Job.owner == flt.owner)
    if flt.status:
        query = query.where(Job.status == flt.status)
    if flt.archived is not None:
        query = query.where(Job.archived == flt.archived)
    if flt.experiment:
        query = query.where(Job.experiment == flt.experiment)
    if flt.sweep_id is not None:
        query = query.where(Job.sweep_id == flt.sweep_id)
    if flt.name_contains:
        escaped = flt.name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(Job.name).like(f"%{escaped.lower()}%", escape="\\"))
    if flt.tag:
        key, _, value = flt.tag.partition(":")
        cond = (JobTag.job_id == Job.id) & (JobTag.key == key)
        if value:
            cond &= JobTag.value == value
        query = query.where(exists().where(cond))
    if flt.diagnosis:
        query = query.where(exists().where((Diagnosis.job_id == Job.id) & (Diagnosis.kind == flt.diagnosis)))
    if before_id is not None:
        query = query.where(Job.id < before_id)
    return list(session.scalars(query))


# -- transitions -----------------------------------------------------------------------------------

# Transitions change rows by their key and never touch loaded objects: the session needs no syncing.
_PLAIN = {"synchronize_session": False}


def claim(session: Session, job_id: int) -> str | None:
    """queued -> running with a new lease (and out of the outbox); the lease token, or None if the
    job is not queued (a duplicate delivery, or a job that ended or another worker holds)."""
    claimed = _claim(session, job_id)
    return None if claimed is None else claimed[0]


def _claim(session: Session, job_id: int, *columns: InstrumentedAttribute) -> tuple | None:
    """The claim itself: (lease, *the claimed row's `columns`) or None."""
    lease, now = str(uuid.uuid4()), db_now(session)
    row = session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(status=JobStatus.running, lease=lease, attempt=Job.attempt + 1, attempt_started_at=now, heartbeat_at=now,
                started_at=func.coalesce(Job.started_at, now))
        .returning(Job.id, Job.owner, *columns), execution_options=_PLAIN).one_or_none()
    if row is None:
        return None
    outbox.remove(session, job_id)
    fairness.started(session, row[1])
    return (lease, *row[2:])


@dataclass(frozen=True)
class Claimed:
    """What a worker needs of the job it has just claimed."""

    lease: str
    attempt: int
    spec: dict[str, Any]
    soft_time_limit: int | None
    sweep_id: int | None
    sweep_trial: int | None
    sweep_seed: int | None
    reserved_bytes: int  # what it may record (0: no reservation, an older job; the column is NOT NULL)
    forked: bool = False  # a fork (POST /jobs/{id}/fork): its trainer starts from its parent's state


def claim_for_training(session: Session, job_id: int) -> Claimed | None:
    """`claim`, and what training needs of the job, in the same transaction; None if not claimed."""
    claimed = _claim(session, job_id, Job.attempt, Job.soft_time_limit, Job.sweep_id, Job.sweep_trial, Job.sweep_seed,
                     Job.reserved_bytes, Job.forked_from_job)
    if claimed is None:
        return None
    lease, attempt, soft, sweep_id, trial, seed, reserved, parent = claimed
    spec = session.scalar(select(JobPayload.spec).where(JobPayload.job_id == job_id))
    return Claimed(lease, attempt, spec, soft, sweep_id, trial, seed, reserved, parent is not None)


def fork_of(session: Session, job_id: int) -> tuple[int, int, dict[str, Any]] | None:
    """A fork's parent, the step it starts from and the parent's spec; None for a job that is no fork (or whose
    parent is gone)."""
    row = session.execute(select(Job.forked_from_job, Job.forked_from_step).where(Job.id == job_id)).first()
    if row is None or row[0] is None:
        return None
    spec = session.scalar(select(JobPayload.spec).where(JobPayload.job_id == row[0]))
    return None if spec is None else (row[0], row[1], spec)


def lineage(session: Session, job_id: int) -> list[int]:
    """The job's ancestors from the first, then the job (each a fork of the one before)."""
    return [job for job, _ in _lineage_steps(session, job_id)]


def _lineage_steps(session: Session, job_id: int) -> list[tuple[int, int | None]]:
    """`lineage` with the step each job was forked at (None for the first)."""
    path: list[tuple[int, int | None]] = []
    while job_id is not None:
        row = session.execute(select(Job.forked_from_job, Job.forked_from_step).where(Job.id == job_id)).first()
        path.insert(0, (job_id, None if row is None else row[1]))
        job_id = None if row is None else row[0]
    return path


def branch_point(session: Session, a: int, b: int) -> tuple[int, int] | None:
    """(the job whose run two jobs both are, how many of its steps they share) when one is a fork of the other, or
    both descend from one ancestor by forks; None for unrelated jobs (or a job and itself)."""
    if a == b:
        return None
    path_a, path_b = _lineage_steps(session, a), _lineage_steps(session, b)
    common = 0
    while common < min(len(path_a), len(path_b)) and path_a[common][0] == path_b[common][0]:
        common += 1
    if common == 0:
        return None
    return path_a[common - 1][0], min(path[common][1] for path in (path_a, path_b) if len(path) > common)


def forks_of(session: Session, job_id: int) -> list[int]:
    """The jobs forked from this one."""
    return list(session.scalars(select(Job.id).where(Job.forked_from_job == job_id).order_by(Job.id)))


def claim_stack_for_training(session: Session, job_id: int, limit: int | Callable[[dict[str, Any]], int]) -> list[tuple[int, Claimed]]:
    """The job and up to `limit - 1` other queued jobs of its sweep with its stack key, claimed in one
    UPDATE, each with its own lease: [(job id, what training needs)], the asked-for job first; empty
    if that job is not queued. A job without a stack key (or `limit` 1) is claimed alone. `limit` may
    be a function of the job's spec (all members share its shape)."""
    key, sweep_id = session.execute(select(Job.stack_key, Job.sweep_id).where(Job.id == job_id, Job.status == JobStatus.queued)
                                    ).one_or_none() or (None, None)
    if key is not None and callable(limit):
        limit = limit(session.scalar(select(JobPayload.spec).where(JobPayload.job_id == job_id)))
    if key is None or limit <= 1:
        claimed = claim_for_training(session, job_id)
        return [] if claimed is None else [(job_id, claimed)]
    siblings = (select(Job.id).where(Job.sweep_id == sweep_id, Job.stack_key == key, Job.status == JobStatus.queued, Job.id != job_id)
                .order_by(Job.id).limit(limit - 1))
    ids = [job_id, *session.scalars(siblings)]
    prefix, now = uuid.uuid4().hex[:24] + "-", db_now(session)
    rows = session.execute(
        update(Job).where(Job.id.in_(ids), Job.status == JobStatus.queued)
        .values(status=JobStatus.running, lease=literal(prefix) + cast(Job.id, String), attempt=Job.attempt + 1,
                attempt_started_at=now, heartbeat_at=now, started_at=func.coalesce(Job.started_at, now))
        .returning(Job.id, Job.lease, Job.attempt, Job.soft_time_limit, Job.sweep_id, Job.sweep_trial, Job.sweep_seed,
                   Job.reserved_bytes, Job.forked_from_job), execution_options=_PLAIN).all()
    specs = dict(session.execute(select(JobPayload.job_id, JobPayload.spec).where(JobPayload.job_id.in_([r[0] for r in rows]))).all())
    for row in rows:
        outbox.remove(session, row[0])
    if rows:
        fairness.started(session, session.scalar(select(Job.owner).where(Job.id == rows[0][0])))
    claimed = {row[0]: Claimed(row[1], row[2], specs[row[0]], *row[3:8], row[8] is not None) for row in rows}
    # The asked-for job first; it may be missing if another worker took it between the two statements
    # (then the siblings this claim did take are trained all the same).
    return sorted(claimed.items(), key=lambda item: (item[0] != job_id, item[0]))


def hard_time_limits(session: Session, job_ids: list[int]) -> dict[int, int | None]:
    """Each job's hard time limit (None: the server's)."""
    return dict(session.execute(select(Job.id, Job.hard_time_limit).where(Job.id.in_(job_ids))).all())


def status_of(session: Session, job_id: int) -> JobStatus | None:
    return session.scalar(select(Job.status).where(Job.id == job_id))


def _leased(job_id: int, lease: str) -> tuple[ColumnElement[bool], ...]:
    return Job.id == job_id, Job.lease == lease, Job.status == JobStatus.running


def heartbeat(session: Session, job_id: int, lease: str) -> bool:
    """The worker is alive; False when the lease was lost."""
    return session.execute(update(Job).where(*_leased(job_id, lease)).values(heartbeat_at=db_now(session)),
                           execution_options=_PLAIN).rowcount == 1


def progress(session: Session, job_id: int, lease: str, step: int, last_loss: float | None) -> bool | None:
    """Record progress under the lease. Returns whether a cancel was requested, or None when the lease was lost."""
    cancel_requested = session.execute(update(Job).where(*_leased(job_id, lease))
                                       .values(step=step, last_loss=last_loss, heartbeat_at=db_now(session))
                                       .returning(Job.cancel_requested), execution_options=_PLAIN).scalar_one_or_none()
    return None if cancel_requested is None else bool(cancel_requested)


def progress_many(session: Session, items: list[tuple[int, str, int, float | None]]) -> dict[int, bool | None]:
    """`progress` for several jobs (job id, lease, step, last loss) in two statements: {job id: whether
    a cancel was requested, or None when its lease was lost (its row untouched)}."""
    if not items:
        return {}
    table = Job.__table__
    fenced = (update(table).where(table.c.id == bindparam("b_id"), table.c.lease == bindparam("b_lease"),
                                  table.c.status == JobStatus.running)
              .values(step=bindparam("b_step"), last_loss=bindparam("b_loss"), heartbeat_at=db_now(session)))
    session.connection().execute(fenced, [{"b_id": i, "b_lease": lease, "b_step": step, "b_loss": loss} for i, lease, step, loss in items])
    leases = {i: lease for i, lease, _, _ in items}
    rows = session.execute(select(Job.id, Job.lease, Job.status, Job.cancel_requested).where(Job.id.in_(list(leases))))
    held = {i: bool(cancel) for i, lease, status, cancel in rows if lease == leases[i] and status is JobStatus.running}
    return {i: held.get(i) for i in leases}


def finish(session: Session, job_id: int, lease: str, status: JobStatus, *, summary: dict | None = None,
           error: dict | None = None, model: dict | None = None) -> bool:
    """running -> a terminal status, under the lease; False if the lease was lost."""
    if status not in TERMINAL:
        raise ValueError(f"{status} is not a terminal status")
    if not _end(session, _leased(job_id, lease), job_id, status, error, summary=summary):
        return False
    if model is not None:
        session.execute(update(JobPayload).where(JobPayload.job_id == job_id).values(model=model), execution_options=_PLAIN)
    return True


def cancel(session: Session, job_id: int) -> JobStatus:
    """Cancel: a queued job at once (it never starts), a running one by flag (its worker stops
    at its next write, every FLUSH_SECONDS, and keeps what it recorded). Returns the job's status afterwards."""
    queued = (Job.id == job_id, Job.status == JobStatus.queued)
    if _end(session, queued, job_id, JobStatus.cancelled, {"reason": "cancelled", "message": "cancelled before it started"}):
        outbox.remove(session, job_id)
    else:
        session.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.running).values(cancel_requested=True))
    return session.scalar(select(Job.status).where(Job.id == job_id))


def silent(since: datetime) -> ColumnElement[bool]:
    """No heartbeat since `since` (or none at all)."""
    return or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < since)


def requeue(session: Session, job_id: int, lease: str, silent_since: datetime) -> bool:
    """running -> queued (with a new outbox row) for a job whose worker went silent, fenced by the lease seen."""
    result = session.execute(update(Job).where(*_leased(job_id, lease), silent(silent_since))
                             .values(status=JobStatus.queued, lease=None))
    if result.rowcount != 1:
        return False
    outbox.add(session, job_id)
    return True


def end_abandoned(session: Session, job_id: int, lease: str, status: JobStatus, error: dict,
                  silent_since: datetime | None = None) -> bool:
    """running -> failed | cancelled, decided by the reaper for a job its worker cannot finish
    (over its hard time limit; or silent since `silent_since`), fenced by the lease it saw."""
    fence = _leased(job_id, lease) + ((silent(silent_since),) if silent_since is not None else ())
    return _end(session, fence, job_id, status, error)


def _end(session: Session, fence: tuple[ColumnElement[bool], ...], job_id: int, status: JobStatus, error: dict | None,
         summary: dict | None = None) -> bool:
    """The one UPDATE that ends a job; its checkpoint goes with it (a job that ended is never resumed)."""
    result = session.execute(update(Job).where(*fence).values(status=status, error=error, summary=summary, finished_at=db_now(session),
                                                              lease=None), execution_options=_PLAIN)
    if result.rowcount != 1:
        return False
    session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))
    webhooks.job_ended(session, job_id)  # queued for the owner's webhooks in the same transaction
    return True
