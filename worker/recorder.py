"""Buffers the trainer's step records and writes them to the store in batches.

A flush is one transaction: the changed metric chunks, any full gradients and traces, the job's
progress and (every CHECKPOINT_EVERY steps) the trainer's checkpoint, fenced by the job's lease. A
worker that lost its lease writes nothing. So the store always holds exactly the points up to the
last checkpoint or beyond; a retry cuts them back to the checkpoint's step and records on from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from engine.problem import POINT_BYTES
from engine.training import StepRecord
from services.store import checkpoints, diagnoses, jobs, metrics, step_arrays
from services.store.metrics import Chunk
from services.store.models import CHUNK_POINTS
from services.store.retry import retry_db


class LeaseLost(RuntimeError):
    """The job was taken from this worker (requeued or finished elsewhere)."""


@dataclass
class FlushResult:
    cancel_requested: bool


class Recorder:
    def __init__(self, sessions: sessionmaker[Session], job_id: int, lease: str, flush_seconds: float,
                 db_retry_seconds: float = 60.0, max_bytes: int = 0) -> None:
        self.sessions, self.job_id, self.lease = sessions, job_id, lease
        # What this attempt recorded, against what the job reserved (its share of the owner's quota; 0: none).
        self.recorded_bytes, self.max_bytes = 0, max_bytes
        self.flush_seconds, self.db_retry_seconds = flush_seconds, db_retry_seconds
        self.current: dict[str, Chunk] = {}
        self.full: list[Chunk] = []
        self.dirty: set[str] = set()
        self.arrays: list[tuple[str, int, bytes]] = []
        # Steps not yet sorted into chunks, grouped by their set of keys (every step of a job has the
        # same keys, plus the epoch's on the last step of an epoch): one append per step here, one
        # transposition per group at the flush.
        self.pending: dict[tuple[str, ...], tuple[list[int], list[list[float]]]] = {}
        self.last_flush = time.monotonic()
        self.step = 0
        self.last_loss: float | None = None
        self.diagnoses: list[dict[str, Any]] = []  # the diagnoser's events since the last flush (the next flush is not put off)

    def add(self, record: StepRecord) -> None:
        self.step, self.last_loss = record.step + 1, record.loss
        if record.metrics:
            group = self.pending.get(keys := tuple(record.metrics))
            if group is None:
                group = self.pending[keys] = ([], [])
            group[0].append(record.step)
            group[1].append(list(record.metrics.values()))
            self.recorded_bytes += POINT_BYTES * len(keys)
        if record.gradients is not None:
            self.arrays.append(("gradients", record.step, step_arrays.encode_gradients(record.gradients)))
            self.recorded_bytes += len(self.arrays[-1][2])
        if record.trace is not None:
            self.arrays.append(("trace", record.step, step_arrays.encode_trace(record.trace)))
            self.recorded_bytes += len(self.arrays[-1][2])

    @property
    def over_quota(self) -> bool:
        """Recorded more than the job reserved: it must stop, keeping what it has."""
        return 0 < self.max_bytes < self.recorded_bytes

    def _sort_into_chunks(self) -> None:
        """Move the pending steps into each key's chunks, in step order, closing chunks that fill up."""
        by_key: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for keys, (steps, rows) in self.pending.items():
            step_array, table = np.asarray(steps), np.asarray(rows, dtype=np.float64)
            for j, key in enumerate(keys):
                by_key.setdefault(key, []).append((step_array, table[:, j]))
        for key, parts in by_key.items():
            steps, values = parts[0] if len(parts) == 1 else map(np.concatenate, zip(*parts, strict=True))
            if len(parts) > 1:  # a key some steps share with the epoch's last step: back in step order
                order = np.argsort(steps, kind="stable")
                steps, values = steps[order], values[order]
            self._extend(key, steps.tolist(), values.tolist())
        self.pending = {}

    def _extend(self, key: str, steps: list[int], values: list[float]) -> None:
        chunk = self.current.get(key) or self.current.setdefault(key, Chunk(key, 0))
        while steps:
            room = CHUNK_POINTS - len(chunk.steps)
            chunk.steps += steps[:room]
            chunk.values += values[:room]
            steps, values = steps[room:], values[room:]
            if len(chunk.steps) == CHUNK_POINTS:
                self.full.append(chunk)
                self.dirty.discard(key)
                chunk = self.current[key] = Chunk(key, chunk.index + 1)
            else:
                self.dirty.add(key)

    def due(self) -> bool:
        return time.monotonic() - self.last_flush >= self.flush_seconds

    def resume(self, step: int) -> None:
        """Continue a job an earlier attempt recorded: drop its points at or after `step` (where the
        checkpoint, or the start, puts training back) and carry on filling its last chunks."""
        retry_db(lambda: self._resume(step), self.db_retry_seconds, f"job {self.job_id}: resume")

    def _resume(self, step: int) -> None:
        with self.sessions.begin() as session:
            if jobs.progress(session, self.job_id, self.lease, step, None) is None:
                raise LeaseLost(f"job {self.job_id} is no longer leased to this worker")  # rolls the transaction back
            self.current = {chunk.key: chunk for chunk in metrics.truncate(session, self.job_id, step)}
            self.dirty = set()
            step_arrays.truncate(session, self.job_id, step)
        self.step = step

    def flush(self, checkpoint: dict[str, Any] | None = None) -> FlushResult:
        """Write what is buffered, the progress and `checkpoint` (a trainer's state after the last
        added step), in one transaction fenced by the lease; retried while the database is away."""
        result = flush_together([self], {self: checkpoint} if checkpoint is not None else None, self.db_retry_seconds)[self]
        if result is None:
            raise LeaseLost(f"job {self.job_id} is no longer leased to this worker")
        return result

    def _check(self, checkpoint: dict[str, Any] | None) -> None:
        if checkpoint is not None and checkpoint["step"] != self.step:
            raise ValueError(f"a checkpoint goes with the points up to its step: {checkpoint['step']} != {self.step}")

    def _pending(self) -> tuple[list[Chunk], list[tuple[str, int, bytes]]]:
        """The chunks and arrays a flush writes (kept until it has committed: a retried flush writes them again)."""
        self._sort_into_chunks()
        return self.full + [self.current[k] for k in self.dirty], self.arrays

    def _flushed(self, cancel: bool) -> FlushResult:
        self.full, self.dirty, self.arrays, self.diagnoses = [], set(), [], []
        self.last_flush = time.monotonic()
        return FlushResult(cancel_requested=cancel)


def flush_together(recorders: list[Recorder], saved: dict[Recorder, dict[str, Any]] | None = None,
                   db_retry_seconds: float = 60.0, kept: dict[Recorder, dict[str, Any]] | None = None) -> dict[Recorder, FlushResult | None]:
    """Flush several jobs' recorders (a stack's) in one transaction, each job's writes fenced by its own
    lease: {recorder: its result, or None when its lease is gone (nothing of it written)}. One commit
    for a whole stack instead of one per job. `saved`: resume checkpoints to write with the points;
    `kept`: states to keep for replays (engine/checkpoint_cadence.py)."""
    if not recorders:
        return {}

    def flush() -> dict[Recorder, bool | None]:
        for recorder in recorders:
            recorder._check((saved or {}).get(recorder))
        with recorders[0].sessions.begin() as session:
            held = jobs.progress_many(session, [(r.job_id, r.lease, r.step, r.last_loss) for r in recorders])
            writing = [r for r in recorders if held[r.job_id] is not None]
            pending = {r: r._pending() for r in writing}
            metrics.write_chunks_of(session, {r.job_id: chunks for r, (chunks, _) in pending.items()})
            step_arrays.write_of(session, {r.job_id: arrays for r, (_, arrays) in pending.items()})
            for r in writing:
                diagnoses.write(session, r.job_id, r.diagnoses)
                if (saved or {}).get(r) is not None:
                    checkpoints.save(session, r.job_id, saved[r])
                if (kept or {}).get(r) is not None:
                    checkpoints.keep(session, r.job_id, kept[r])
        return {r: held[r.job_id] for r in recorders}

    outcome = retry_db(flush, db_retry_seconds, f"jobs {[r.job_id for r in recorders]}: flush")
    return {recorder: None if cancel is None else recorder._flushed(cancel) for recorder, cancel in outcome.items()}
