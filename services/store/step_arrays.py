"""Full gradients (.npz, loaded with allow_pickle=False) and traces (JSON) of recorded steps."""

from __future__ import annotations

import io
import json
import zlib
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from . import metrics
from .models import StepArray
from .upsert import upsert

KINDS = ("gradients", "trace")


def encode_gradients(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def decode_gradients(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def encode_trace(trace: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(trace, allow_nan=False).encode())


def decode_trace(data: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(data))


def write(session: Session, job_id: int, rows: list[tuple[str, int, bytes]]) -> None:
    """Store (kind, step, data) rows, replacing any already there (the caller commits)."""
    write_of(session, {job_id: rows})


def write_of(session: Session, rows: dict[int, list[tuple[str, int, bytes]]]) -> None:
    """`write` for several jobs in one statement."""
    upsert(session, StepArray, [{"job_id": job_id, "kind": k, "step": s, "data": d} for job_id, some in rows.items() for k, s, d in some],
           ["job_id", "kind", "step"])


def _owner(session: Session, job_id: int, step: int) -> int:
    """Whose record a fork's step is: an ancestor's before the fork step, its own after (metrics.lineage)."""
    return next(owner for owner, lo, hi in metrics.lineage(session, job_id) if (lo is None or step >= lo) and (hi is None or step <= hi))


def read(session: Session, job_id: int, kind: str, step: int, inherited: bool = False) -> bytes | None:
    """The step's record (`inherited`: a fork's steps before its fork step are its parent's)."""
    owner = _owner(session, job_id, step) if inherited else job_id
    return session.scalar(select(StepArray.data).where(StepArray.job_id == owner, StepArray.kind == kind, StepArray.step == step))


def steps(session: Session, job_id: int, kind: str, inherited: bool = False) -> list[int]:
    """The steps with a record of `kind` (`inherited`: with a fork's ancestors' before its fork step)."""
    segments = metrics.lineage(session, job_id) if inherited else [(job_id, None, None)]
    out: list[int] = []
    for owner, lo, hi in segments:
        query = select(StepArray.step).where(StepArray.job_id == owner, StepArray.kind == kind)
        if lo is not None:
            query = query.where(StepArray.step >= lo)
        if hi is not None:
            query = query.where(StepArray.step <= hi)
        out += session.scalars(query.order_by(StepArray.step))
    return out


def truncate(session: Session, job_id: int, step: int) -> None:
    """Forget what was recorded at or after `step` (a retry records it again)."""
    session.execute(delete(StepArray).where(StepArray.job_id == job_id, StepArray.step >= step))
