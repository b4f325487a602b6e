"""Metric points in chunks: write (idempotent upserts), read, downsample.

A chunk holds up to CHUNK_POINTS consecutive points of one key; its steps are '<i4' and its values
'<f8', packed. Rewriting a chunk (a partial one growing, or a re-sent flush) replaces its row.

A fork holds only the points it recorded itself (from its fork step on); with `inherited=True` the
readers give its whole series, the steps before the fork read through from its parent (and theirs),
as the API shows a fork. The MLflow mirror reads a job's own points only: a fork's run is nested
under its parent's, which has the rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from .models import CHUNK_POINTS, Job, MetricChunk
from .upsert import upsert


@dataclass
class Chunk:
    key: str
    index: int
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def row(self, job_id: int) -> dict:
        return {"job_id": job_id, "key": self.key, "chunk": self.index, "first_step": self.steps[0], "last_step": self.steps[-1],
                "n": len(self.steps), "steps": np.asarray(self.steps, dtype="<i4").tobytes(),
                "values": np.asarray(self.values, dtype="<f8").tobytes()}


def write_chunks(session: Session, job_id: int, chunks: list[Chunk]) -> None:
    """Insert or replace chunks (the caller commits)."""
    write_chunks_of(session, {job_id: chunks})


def write_chunks_of(session: Session, chunks: dict[int, list[Chunk]]) -> None:
    """Insert or replace several jobs' chunks in one statement (the caller commits)."""
    upsert(session, MetricChunk, [c.row(job_id) for job_id, some in chunks.items() for c in some if c.steps], ["job_id", "key", "chunk"])


def truncate(session: Session, job_id: int, step: int) -> list[Chunk]:
    """Forget the points at or after `step`, and return each key's last chunk as it now stands, for
    recording to go on filling it (the caller commits)."""
    session.execute(delete(MetricChunk).where(MetricChunk.job_id == job_id, MetricChunk.first_step >= step))
    last = (select(MetricChunk.key, func.max(MetricChunk.chunk).label("chunk")).where(MetricChunk.job_id == job_id)
            .group_by(MetricChunk.key).subquery())
    rows = session.execute(select(MetricChunk.key, MetricChunk.chunk, MetricChunk.steps, MetricChunk.values).join(
        last, (MetricChunk.key == last.c.key) & (MetricChunk.chunk == last.c.chunk)).where(MetricChunk.job_id == job_id))
    tails = []
    for key, index, steps_raw, values_raw in rows:
        steps = np.frombuffer(steps_raw, "<i4")
        keep = int(np.searchsorted(steps, step))  # steps ascend within a chunk
        chunk = Chunk(key, index, steps[:keep].tolist(), np.frombuffer(values_raw, "<f8")[:keep].tolist())
        if keep < steps.size:
            write_chunks(session, job_id, [chunk])
        if len(chunk.steps) == CHUNK_POINTS:
            chunk = Chunk(key, index + 1)
        tails.append(chunk)
    return tails


Segment = tuple[int, int | None, int | None]  # a job, and the steps [start, end] of its own points that a series takes


def lineage(session: Session, job_id: int) -> list[Segment]:
    """Where a job's series lives, earliest first: for a fork, its ancestors' points before each fork step,
    then its own from its fork step on; for any other job, its own points."""
    segments: list[Segment] = []
    current, end = job_id, None
    while True:
        row = session.execute(select(Job.forked_from_job, Job.forked_from_step).where(Job.id == current)).first()
        parent, step = row if row is not None else (None, None)
        segments.insert(0, (current, step if parent is not None else None, end))
        if parent is None:
            return segments
        current, end = parent, step - 1


def _within(segments: list[Segment], start: int | None, end: int | None) -> list[Segment]:
    """The segments narrowed to steps [start, end] (None: open), those left empty dropped."""
    out = []
    for job_id, lo, hi in segments:
        lo = start if lo is None else lo if start is None else max(lo, start)
        hi = end if hi is None else hi if end is None else min(hi, end)
        if lo is None or hi is None or lo <= hi:
            out.append((job_id, lo, hi))
    return out


def keys(session: Session, job_id: int, inherited: bool = False) -> list[str]:
    """The keys the job recorded (`inherited`: or, for a fork, that its series holds from its ancestors)."""
    owners = [s[0] for s in lineage(session, job_id)] if inherited else [job_id]
    return list(session.scalars(select(MetricChunk.key).where(MetricChunk.job_id.in_(owners)).distinct().order_by(MetricChunk.key)))


def _chunks(query: Select, job_id: int, wanted: list[str] | None, start: int | None, end: int | None) -> Select:
    """`query` narrowed to the job's chunks of the `wanted` keys that overlap steps [start, end]."""
    query = query.where(MetricChunk.job_id == job_id)
    if wanted:
        query = query.where(MetricChunk.key.in_(wanted))
    if start is not None:
        query = query.where(MetricChunk.last_step >= start)
    if end is not None:
        query = query.where(MetricChunk.first_step <= end)
    return query


def read(session: Session, job_id: int, wanted: list[str] | None = None, start: int | None = None,
         end: int | None = None, inherited: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{key: (steps, values)}` for steps in [start, end] (`inherited`: a fork's whole series, see above)."""
    if not inherited:
        return _read_own(session, job_id, wanted, start, end)
    parts: dict[str, tuple[list, list]] = {}
    for owner, lo, hi in _within(lineage(session, job_id), start, end):
        for key, (steps, values) in _read_own(session, owner, wanted, lo, hi).items():
            s, v = parts.setdefault(key, ([], []))
            s.append(steps)
            v.append(values)
    return {key: (np.concatenate(s), np.concatenate(v)) for key, (s, v) in parts.items()}


def _read_own(session: Session, job_id: int, wanted: list[str] | None, start: int | None,
              end: int | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    query = _chunks(select(MetricChunk.key, MetricChunk.steps, MetricChunk.values), job_id, wanted, start, end)
    parts: dict[str, tuple[list, list]] = {}
    for key, steps, values in session.execute(query.order_by(MetricChunk.key, MetricChunk.chunk)):
        s, v = parts.setdefault(key, ([], []))
        s.append(np.frombuffer(steps, dtype="<i4"))
        v.append(np.frombuffer(values, dtype="<f8"))
    out = {}
    for key, (s, v) in parts.items():
        steps, values = np.concatenate(s), np.concatenate(v)
        keep = np.ones(steps.size, dtype=bool)
        if start is not None:
            keep &= steps >= start
        if end is not None:
            keep &= steps <= end
        out[key] = (steps[keep], values[keep])
    return out


def count(session: Session, job_id: int, wanted: list[str] | None = None, start: int | None = None,
          end: int | None = None, inherited: bool = False) -> dict[str, int]:
    """Points per key that `read` with the same arguments would touch (whole chunks: at most a chunk more at each end)."""
    if inherited:
        out: dict[str, int] = {}
        for owner, lo, hi in _within(lineage(session, job_id), start, end):
            for key, n in count(session, owner, wanted, lo, hi).items():
                out[key] = out.get(key, 0) + n
        return out
    query = _chunks(select(MetricChunk.key, func.sum(MetricChunk.n)), job_id, wanted, start, end).group_by(MetricChunk.key)
    return {key: int(n) for key, n in session.execute(query)}


def last_points(session: Session, job_id: int, keys: Sequence[str] | None = None) -> dict[str, tuple[int, float]]:
    """The last recorded (step, value) of every key (or of `keys`)."""
    last = select(MetricChunk.key, func.max(MetricChunk.chunk).label("chunk")).where(MetricChunk.job_id == job_id)
    if keys is not None:
        last = last.where(MetricChunk.key.in_(keys))
    last = last.group_by(MetricChunk.key).subquery()
    rows = session.execute(select(MetricChunk.key, MetricChunk.steps, MetricChunk.values).join(
        last, (MetricChunk.key == last.c.key) & (MetricChunk.chunk == last.c.chunk)).where(MetricChunk.job_id == job_id))
    return {key: (int(np.frombuffer(steps, "<i4")[-1]), float(np.frombuffer(values, "<f8")[-1])) for key, steps, values in rows}


def downsample(steps: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` points: the series cut into equal buckets, each keeping its first, min,
    max and last point, so spikes survive."""
    n = steps.size
    if n <= max_points:
        return steps, values
    idx = kept_indices(values, bucket_bounds(n, max_points))
    return steps[idx], values[idx]


def bucket_bounds(n: int, max_points: int, upto: int | None = None) -> np.ndarray:
    """The bucket edges that cut a series of `n` points into `max_points // 4` equal buckets (one
    bucket per point when it fits). Given `upto` > n, buckets of the same width go on past n, so a
    series longer than planned is still cut the same way (the MLflow mirror plans on the spec's length)."""
    if n <= max_points:
        bounds = np.arange(n + 1, dtype=np.int64)
        width = 1
    else:
        buckets = max(1, max_points // 4)
        bounds = np.linspace(0, n, buckets + 1).astype(np.int64)
        width = int(np.ceil(n / buckets))
    if upto is not None and upto > n:
        bounds = np.concatenate([bounds, np.arange(n + width, upto + width, width, dtype=np.int64)])
    return bounds


def kept_indices(values: np.ndarray, bounds: np.ndarray, offset: int = 0) -> np.ndarray:
    """The indices a bucketed downsample keeps (first, min, max and last of each bucket between
    consecutive `bounds`), for `values` that start at index `offset` and cover those buckets."""
    keep = []
    for lo, hi in itertools.pairwise(bounds.tolist()):
        if hi <= lo:
            continue
        if hi - lo <= 2:
            keep.extend(range(lo, hi))
            continue
        chunk = values[lo - offset:hi - offset]
        keep += [lo, lo + int(np.argmin(chunk)), lo + int(np.argmax(chunk)), hi - 1]
    return np.unique(np.array(keep, dtype=np.int64))
