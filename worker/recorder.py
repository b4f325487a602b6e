"""Buffers the trainer's step records and writes them to the store in batches.

A flush is one transaction: the changed metric chunks, any full gradients and traces, and the
job's progress, fenced by the job's lease. A worker that lost its lease writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from engine.training import StepRecord
from services import jobs, metrics, step_arrays
from services.metrics import Chunk
from services.models import CHUNK_POINTS


class LeaseLost(RuntimeError):
    """The job was taken from this worker (requeued or finished elsewhere)."""


@dataclass
class FlushResult:
    cancel_requested: bool


class Recorder:
    def __init__(self, sessions: sessionmaker[Session], job_id: int, lease: str, flush_seconds: float):
        self.sessions, self.job_id, self.lease = sessions, job_id, lease
        self.flush_seconds = flush_seconds
        self.current: dict[str, Chunk] = {}
        self.full: list[Chunk] = []
        self.dirty: set[str] = set()
        self.arrays: list[tuple[str, int, bytes]] = []
        self.last_flush = time.monotonic()
        self.points = 0
        self.step = 0
        self.last_loss: float | None = None

    def add(self, record: StepRecord) -> None:
        self.step, self.last_loss = record.step + 1, record.loss
        for key, value in record.metrics.items():
            chunk = self.current.get(key)
            if chunk is None:
                chunk = self.current[key] = Chunk(key, 0)
            chunk.steps.append(record.step)
            chunk.values.append(value)
            self.dirty.add(key)
            if len(chunk.steps) == CHUNK_POINTS:
                self.full.append(chunk)
                self.current[key] = Chunk(key, chunk.index + 1)
                self.dirty.discard(key)
        self.points += len(record.metrics)
        if record.gradients is not None:
            self.arrays.append(("gradients", record.step, step_arrays.encode_gradients(record.gradients)))
        if record.trace is not None:
            self.arrays.append(("trace", record.step, step_arrays.encode_trace(record.trace)))

    def due(self) -> bool:
        return time.monotonic() - self.last_flush >= self.flush_seconds

    def flush(self) -> FlushResult:
        """Write what is buffered and the progress, in one transaction fenced by the lease."""
        chunks = self.full + [self.current[k] for k in self.dirty]
        with self.sessions() as session:
            metrics.write_chunks(session, self.job_id, chunks)
            step_arrays.write(session, self.job_id, self.arrays)
            cancel = jobs.progress(session, self.job_id, self.lease, self.step, self.last_loss)
            if cancel is None:
                session.rollback()
                raise LeaseLost(f"job {self.job_id} is no longer leased to this worker")
            session.commit()
        self.full, self.dirty, self.arrays = [], set(), []
        self.last_flush = time.monotonic()
        return FlushResult(cancel_requested=cancel)
