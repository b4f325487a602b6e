"""A trainer's full state as bytes in the store: arrays in an .npz, the rest as JSON, no pickle.

`Trainer.state_dict()` holds arrays (parameters, optimizer buffers, the epoch's sample order) and
plain values (step, epoch, the RNG's state with its 128-bit integers, the epoch's running sums);
both round-trip exactly, so a resumed job continues bit for bit.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from .columns import utcnow
from .models import Checkpoint
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
