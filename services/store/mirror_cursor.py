"""The MLflow mirror's bookkeeping in the store: a lock per job, the cursor (points sent per key),
and the state users see (`pending`, `synced`, `failed` with the reason, `disabled`).

The MLflow worker (worker/mlflow/) claims jobs in two kinds of batches, runs first: jobs whose run
itself is behind (not created, or ended and not finished), then jobs whose series are behind, each
in its turn; it reads their points after the cursor, sends them, then advances the cursor here.
MLflow being down only leaves the cursor where it is.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from . import locks
from .columns import db_now
from .models import CHUNK_POINTS, TERMINAL, Job, JobStatus, MetricChunk, MirrorState

KEYS_PER_QUERY = 400  # keeps each query's bound parameters (two per key) far below SQLite's limit


def acquire(session: Session, job_id: int) -> str | None:
    """Take the job's mirror lock (one mirror writes a run at a time); the token or None."""
    return locks.acquire(session, Job.mirror_lock, Job.mirror_lock_until, job_id)


def save(session: Session, job_id: int, token: str, **values: object) -> bool:
    """Update mirror columns (cursor, state, run ids) while holding the lock, which this extends."""
    return locks.extend(session, Job.mirror_lock, Job.mirror_lock_until, job_id, token, **values)


def release(session: Session, job_id: int, token: str) -> None:
    locks.release(session, Job.mirror_lock, Job.mirror_lock_until, job_id, token)


def claim_runs(session: Session, token: str, limit: int) -> list[int]:
    """Lock up to `limit` jobs whose MLflow run itself is behind, with one token for the batch: ended
    jobs whose run has not got its final status (the longest ended first), started jobs with no run
    yet, and runs whose name, tags or archived flag changed. Their series wait for these."""
    ended_first = case((Job.status.in_(tuple(TERMINAL)), 0), else_=1)
    unfinished = and_(Job.mirror_state == MirrorState.pending,
                      or_(Job.mlflow_run_id.is_(None), and_(Job.status.in_(tuple(TERMINAL)), Job.mlflow_run_finished_at.is_(None))))
    stale = and_(Job.mirror_state.in_((MirrorState.pending, MirrorState.synced)), Job.mirror_meta_stale)
    return _claim(session, token, limit, or_(unfinished, stale), (ended_first, Job.finished_at, Job.id))


def claim_series(session: Session, token: str, limit: int) -> list[int]:
    """Lock up to `limit` jobs whose run exists (and, once ended, is finished) but whose series or
    artifacts are behind, the one whose series waited longest first: each gets a turn in its place."""
    ready = and_(Job.mirror_state == MirrorState.pending, Job.mlflow_run_id.is_not(None),
                 or_(Job.status == JobStatus.running, Job.mlflow_run_finished_at.is_not(None)), ~Job.mirror_meta_stale)
    never_first = case((Job.mirror_series_at.is_(None), 0), else_=1)
    return _claim(session, token, limit, ready, (never_first, Job.mirror_series_at, Job.id))


def _claim(session: Session, token: str, limit: int, behind: ColumnElement[bool], order: tuple) -> list[int]:
    now = db_now(session)
    free = or_(Job.mirror_lock.is_(None), Job.mirror_lock_until < now)
    ids = list(session.scalars(select(Job.id).where(behind, Job.status != JobStatus.queued, free).order_by(*order).limit(limit)))
    if not ids:
        return []
    session.execute(update(Job).where(Job.id.in_(ids), free)
                    .values(mirror_lock=token, mirror_lock_until=now + timedelta(seconds=locks.LOCK_SECONDS)))
    held = set(session.scalars(select(Job.id).where(Job.id.in_(ids), Job.mirror_lock == token)))
    return [job_id for job_id in ids if job_id in held]


def backlog(session: Session) -> tuple[int, int, int]:
    """What the MLflow worker has still to do: (ended jobs whose run is not finished in MLflow, jobs
    whose series are behind, points they wait for as of its last look at each)."""
    runs = session.scalar(select(func.count()).where(Job.mirror_state == MirrorState.pending, Job.status.in_(tuple(TERMINAL)),
                                                     Job.mlflow_run_finished_at.is_(None)))
    series, points = session.execute(select(func.count(), func.coalesce(func.sum(Job.mirror_points_due - Job.mirror_points), 0))
                                     .where(Job.mirror_state == MirrorState.pending, Job.status != JobStatus.queued)).one()
    return int(runs or 0), int(series or 0), max(0, int(points or 0))


def points_after(session: Session, job_id: int, cursor: dict[str, int]) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """For each key, `(index of the first returned point, steps, values)` of the points not sent yet."""
    # First the chunk list without the arrays, then only the chunks holding unsent points: per key,
    # those from the chunk of its cursor on (one IN and one CASE per query, whatever the number of keys).
    listing = session.execute(select(MetricChunk.key, MetricChunk.chunk, MetricChunk.n).where(MetricChunk.job_id == job_id))
    lowest: dict[str, int] = {}
    for key, chunk, n in listing:
        if chunk * CHUNK_POINTS + n > cursor.get(key, 0):
            lowest[key] = min(chunk, lowest.get(key, chunk))
    keys = sorted(lowest)
    pending: dict[str, list] = {}
    for i in range(0, len(keys), KEYS_PER_QUERY):
        batch = {key: lowest[key] for key in keys[i:i + KEYS_PER_QUERY]}
        rows = session.execute(select(MetricChunk.key, MetricChunk.chunk, MetricChunk.steps, MetricChunk.values)
                               .where(MetricChunk.job_id == job_id, MetricChunk.key.in_(batch),
                                      MetricChunk.chunk >= case(batch, value=MetricChunk.key))
                               .order_by(MetricChunk.key, MetricChunk.chunk))
        for key, chunk, steps, values in rows:
            pending.setdefault(key, []).append((chunk, np.frombuffer(steps, "<i4"), np.frombuffer(values, "<f8")))
    out = {}
    for key, parts in pending.items():
        first = parts[0][0] * CHUNK_POINTS
        steps, values = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
        skip = cursor.get(key, 0) - first
        if steps.size > skip:
            out[key] = (first + skip, steps[skip:], values[skip:])
    return out
