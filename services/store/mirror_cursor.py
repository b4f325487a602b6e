"""The MLflow mirror's bookkeeping in the store: a lock per job, the cursor (points sent per key),
and the state users see (`pending`, `synced`, `failed` with the reason, `disabled`).

The MLflow worker (worker/mlflow/) claims a batch of jobs whose runs are behind, reads their points
after the cursor, sends them, then advances the cursor here; MLflow being down only leaves the
cursor where it is.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session

from . import locks
from .columns import utcnow
from .models import CHUNK_POINTS, Job, JobStatus, MetricChunk, MirrorState

KEYS_PER_QUERY = 400  # keeps each query's bound parameters (two per key) far below SQLite's limit


def acquire(session: Session, job_id: int) -> str | None:
    """Take the job's mirror lock (one mirror writes a run at a time); the token or None."""
    return locks.acquire(session, Job.mirror_lock, Job.mirror_lock_until, job_id)


def save(session: Session, job_id: int, token: str, **values: object) -> bool:
    """Update mirror columns (cursor, state, run ids) while holding the lock, which this extends."""
    return locks.extend(session, Job.mirror_lock, Job.mirror_lock_until, job_id, token, **values)


def release(session: Session, job_id: int, token: str) -> None:
    locks.release(session, Job.mirror_lock, Job.mirror_lock_until, job_id, token)


def claim_behind(session: Session, token: str, limit: int) -> list[int]:
    """Lock up to `limit` started jobs whose runs are behind, ended ones first (oldest first), with
    one token for the batch; their ids. Jobs another mirror holds are left to it."""
    now = utcnow()
    free = or_(Job.mirror_lock.is_(None), Job.mirror_lock_until < now)
    running_last = case((Job.status == JobStatus.running, 1), else_=0)
    behind = or_(Job.mirror_state == MirrorState.pending, and_(Job.mirror_state == MirrorState.synced, Job.mirror_meta_stale))
    ids = list(session.scalars(select(Job.id).where(behind, Job.status != JobStatus.queued, free)
                               .order_by(running_last, Job.id).limit(limit)))
    if not ids:
        return []
    session.execute(update(Job).where(Job.id.in_(ids), free)
                    .values(mirror_lock=token, mirror_lock_until=now + timedelta(seconds=locks.LOCK_SECONDS)))
    return list(session.scalars(select(Job.id).where(Job.id.in_(ids), Job.mirror_lock == token).order_by(running_last, Job.id)))




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
