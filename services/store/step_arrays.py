"""Full gradients (.npz, loaded with allow_pickle=False) and traces (JSON) of recorded steps."""

from __future__ import annotations

import io
import json
import zlib
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

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


def read(session: Session, job_id: int, kind: str, step: int) -> bytes | None:
    return session.scalar(select(StepArray.data).where(StepArray.job_id == job_id, StepArray.kind == kind, StepArray.step == step))


def steps(session: Session, job_id: int, kind: str) -> list[int]:
    return list(session.scalars(select(StepArray.step).where(StepArray.job_id == job_id, StepArray.kind == kind).order_by(StepArray.step)))


def truncate(session: Session, job_id: int, step: int) -> None:
    """Forget what was recorded at or after `step` (a retry records it again)."""
    session.execute(delete(StepArray).where(StepArray.job_id == job_id, StepArray.step >= step))
