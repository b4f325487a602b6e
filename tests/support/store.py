"""Store helpers the store, worker and MLflow tests share: a bare job row, a job gone silent, one
reaper pass, a metric series written in chunks."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from services.store import jobs, metrics, reaper
from services.store.columns import utcnow
from services.store.metrics import CHUNK_POINTS, Chunk
from services.store.models import Job


def new_job(session) -> int:
    """A queued job with a placeholder spec (for tests of the store's own tables)."""
    return jobs.create_job(session, {"spec": "x"}, total_steps=10, n_params=1).id


def silence(sessions, job_id: int, seconds: float = 60) -> None:
    """As if the job's worker stopped heartbeating `seconds` ago."""
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def reap(sessions, settings) -> dict:
    """One reaper pass in its own transaction."""
    with sessions.begin() as s:
        return reaper.reap(s, settings)


def write_series(sessions, job_id: int, keys: list[str], steps: int) -> None:
    """`steps` points of each key, in the store's chunks."""
    with sessions.begin() as s:
        for key in keys:
            chunks = [Chunk(key, i, list(range(i * CHUNK_POINTS, min(steps, (i + 1) * CHUNK_POINTS))),
                            [float(hash((key, i)) % 1000) + j for j in range(min(CHUNK_POINTS, steps - i * CHUNK_POINTS))])
                      for i in range(-(-steps // CHUNK_POINTS))]
            metrics.write_chunks(s, job_id, chunks)
