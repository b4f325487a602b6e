"""A trainer's full state as bytes in the store: arrays in an .npz, the rest as JSON, no pickle.

Two kinds: a running job's one resume checkpoint (`save`/`load`: what a retry starts from, gone when
the job ends) and its kept checkpoints (`keep`, `kept_steps`, `load_kept`: at the spec's cadence and
after its last step, kept after it ends, for replays and forks; engine/checkpoint_cadence.py).

`Trainer.state_dict()` holds arrays (parameters, optimizer buffers, the epoch's sample order) and
plain values (step, epoch, the RNG's state with its 128-bit integers, the epoch's running sums);
both round-trip exactly, so a resumed job continues bit for bit.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .columns import utcnow
from .models import Checkpoint, KeptCheckpoint
from .upsert import upsert

OPTIMIZER_PREFIX = "optimizer."


def encode(state: dict[str, Any]) -> bytes:
    arrays = {"params": state["params"]}
    if state["order"] is not None:
        arrays["order"] = state["order"]
    arrays.update({OPTIMIZER_PREFIX + name: value for name, value in state["optimizer"]["state"].items()})
    meta = {"step": state["step"], "epoch": state["epoch"], "batch_index": state["batch_index"], "rng": state["rng"],
            "optimizer_t": state["optimizer"]["t"], "epoch_sums": state["epoch_sums"], "diagnoses": state.get("diagnoses")}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def decode(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    return {"step": meta["step"], "epoch": meta["epoch"], "batch_index": meta["batch_index"], "rng": meta["rng"],
            "params": arrays.pop("params"), "order": arrays.pop("order", None), "epoch_sums": meta["epoch_sums"],
            "diagnoses": meta.get("diagnoses"),
            "optimizer": {"t": meta["optimizer_t"],
                          "state": {name[len(OPTIMIZER_PREFIX):]: value for name, value in arrays.items()}}}


def save(session: Session, job_id: int, state: dict[str, Any]) -> None:
    """Insert or replace the job's checkpoint (the caller commits, with the points up to its step)."""
    upsert(session, Checkpoint, [{"job_id": job_id, "step": int(state["step"]), "data": encode(state), "created_at": utcnow()}],
           ["job_id"])


def load(session: Session, job_id: int) -> dict[str, Any] | None:
    data = session.scalar(select(Checkpoint.data).where(Checkpoint.job_id == job_id))
    return None if data is None else decode(data)


def keep(session: Session, job_id: int, state: dict[str, Any]) -> None:
    """Keep the job's state after `state["step"]` steps (a retry that reaches the step again replaces it)."""
    upsert(session, KeptCheckpoint, [{"job_id": job_id, "step": int(state["step"]), "data": encode(state), "created_at": utcnow()}],
           ["job_id", "step"])


def kept_steps(session: Session, job_ids: list[int]) -> dict[int, list[int]]:
    """Each job's kept steps, in order."""
    rows = session.execute(select(KeptCheckpoint.job_id, KeptCheckpoint.step).where(KeptCheckpoint.job_id.in_(job_ids))
                           .order_by(KeptCheckpoint.job_id, KeptCheckpoint.step))
    found: dict[int, list[int]] = {job_id: [] for job_id in job_ids}
    for job_id, step in rows:
        found[job_id].append(step)
    return found


def load_kept(session: Session, job_id: int, step: int) -> dict[str, Any] | None:
    data = session.scalar(select(KeptCheckpoint.data).where(KeptCheckpoint.job_id == job_id, KeptCheckpoint.step == step))
    return None if data is None else decode(data)


def kept_bytes(session: Session, job_id: int) -> int:
    """What the job's kept checkpoints take."""
    return int(session.scalar(select(func.coalesce(func.sum(func.length(KeptCheckpoint.data)), 0))
                              .where(KeptCheckpoint.job_id == job_id)) or 0)


def delete_kept(session: Session, job_id: int) -> int:
    """Delete the job's kept checkpoints; the bytes they took."""
    size = kept_bytes(session, job_id)
    session.execute(delete(KeptCheckpoint).where(KeptCheckpoint.job_id == job_id))
    return size
