"""The MLflow mirror's bookkeeping in the store: a lock per job, the cursor (points sent per key),
the state users see (`pending`, `synced`, `failed` with the reason, `disabled`).

The mirror itself (worker/mlflow_mirror.py) reads points from the store after the cursor, sends
them, then advances the cursor here; MLflow being down only leaves the cursor where it is.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from .models import CHUNK_POINTS, TERMINAL_VALUES, Job, MetricChunk, utcnow

LOCK_SECONDS = 120


def acquire(session: Session, job_id: int) -> str | None:
    """Take the job's mirror lock (one mirror writes a run at a time); the token or None."""
    token, now = str(uuid.uuid4()), utcnow()
    result = session.execute(
        update(Job).where(Job.id == job_id, or_(Job.mirror_lock.is_(None), Job.mirror_lock_until < now))
        .values(mirror_lock=token, mirror_lock_until=now + timedelta(seconds=LOCK_SECONDS))
    )
    session.commit()
    return token if result.rowcount == 1 else None


def release(session: Session, job_id: int, token: str) -> None:
    session.execute(update(Job).where(Job.id == job_id, Job.mirror_lock == token).values(mirror_lock=None, mirror_lock_until=None))
    session.commit()


def save(session: Session, job_id: int, token: str, **values) -> None:
    """Update mirror columns (cursor, state, run ids) while holding the lock; extends the lock."""
    values["mirror_lock_until"] = utcnow() + timedelta(seconds=LOCK_SECONDS)
    session.execute(update(Job).where(Job.id == job_id, Job.mirror_lock == token).values(**values))
    session.commit()


def save_unlocked(session: Session, job_id: int, **values) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(**values))
    session.commit()


def points_after(session: Session, job_id: int, cursor: dict[str, int]) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """For each key, `(index of the first returned point, steps, values)` of the points not sent yet."""
    # First the chunk list without the arrays, then only the chunks holding unsent points.
    listing = session.execute(select(MetricChunk.key, MetricChunk.chunk, MetricChunk.n).where(MetricChunk.job_id == job_id))
    wanted = [(key, chunk) for key, chunk, n in listing if chunk * CHUNK_POINTS + n > cursor.get(key, 0)]
    if not wanted:
        return {}
    rows = session.execute(select(MetricChunk.key, MetricChunk.chunk, MetricChunk.steps, MetricChunk.values)
                           .where(MetricChunk.job_id == job_id, or_(*[(MetricChunk.key == k) & (MetricChunk.chunk == c) for k, c in wanted]))
                           .order_by(MetricChunk.key, MetricChunk.chunk))
    pending: dict[str, list] = {}
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


def jobs_to_backfill(session: Session, limit: int = 50) -> list[int]:
    """Ended jobs whose mirror is behind and not being written right now."""
    now = utcnow()
    query = (select(Job.id).where(Job.mirror_state == "pending", Job.status.in_(sorted(TERMINAL_VALUES)),
                                  or_(Job.mirror_lock.is_(None), Job.mirror_lock_until < now))
             .order_by(Job.id).limit(limit))
    return list(session.scalars(query))
