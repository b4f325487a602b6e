"""/api/v1/jobs/{id}/gradients and /trace: the full gradients and backward-pass trace of any step.

A step the job recorded in full is read from the store (a fork's early steps through its parent). Any
other step a job that ended took is replayed on request by a training worker (training is deterministic:
bit for bit what a run recording it would have written), then kept: 202 with `Retry-After` until then."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from engine.trace import format_trace_table
from services.store import step_arrays
from services.store.models import TERMINAL

from ..computed import RETRY_AFTER, computed
from ..errors import ApiError
from ..negotiation import wants
from ..openapi import operation
from ..owned import job_or_404
from ..request_session import db
from ..schemas.common import Pending
from ..schemas.recorded import Gradients, StepQuery, Trace
from .checkpoints import require_kept
from .jobs import JOB_ID

bp = Blueprint("recorded_steps", __name__, url_prefix="/api/v1/jobs")
PENDING = {202: (Pending, "not recorded: a worker is replaying the job to the step; ask again after `Retry-After` seconds")}


def _step(job_id: int, kind: str) -> tuple[int, bytes | None, dict[str, Any] | None]:
    """(step, the recorded bytes, or the replayed record {gradients, trace}); None for both while it is replayed."""
    job = job_or_404(job_id)
    step = request.context.query.step
    data = step_arrays.read(db(), job_id, kind, step, inherited=True)
    if data is not None:
        return step, data, None
    if job.status not in TERMINAL or step >= job.step:
        recorded = step_arrays.steps(db(), job_id, kind, inherited=True)
        why = (f"job {job_id} is {job.status.value}: a step it did not record is replayed once it has ended" if job.status not in TERMINAL
               else f"job {job_id} took steps 0 to {job.step - 1:,}")
        raise ApiError("not-recorded", f"no {kind} at step {step}: {why}" + (f"; recorded steps are {recorded[:20]}" if recorded else ""),
                       field="step", recorded_steps=recorded[:1000])
    require_kept(job_id, f"step {step} was not recorded and cannot be replayed")
    done = computed(job_id, "replay", {"step": step}, f"replay of step {step}")
    return step, None, None if done is None else done.result


def _pending(job_id: int, step: int):
    return Pending(status="pending", job_id=job_id, step=step, detail=f"step {step} was not recorded: a worker is replaying the job "
                   "to it"), 202, {"Retry-After": RETRY_AFTER}


@bp.get(f"/{JOB_ID}/gradients")
@operation("recorded", ok=Gradients, query=StepQuery, problems=("not-found", "not-recorded", "checkpoints-deleted", "internal-error"), also=PENDING)
def get_gradients(job_id: int):
    """The full gradients of any step: recorded (with `record.gradients: "full"`), or replayed on request for a job
    that has ended (`replayed: true`; 202 while a worker computes it)."""
    step, data, replayed = _step(job_id, "gradients")
    if data is not None:
        return Gradients(step=step, gradients={k: v.tolist() for k, v in step_arrays.decode_gradients(data).items()})
    if replayed is None:
        return _pending(job_id, step)
    return Gradients(step=step, gradients=replayed["gradients"], replayed=True, replayed_from=replayed.get("replayed_from"))


@bp.get(f"/{JOB_ID}/trace")
@operation("recorded", ok=Trace, query=StepQuery, problems=("not-found", "not-recorded", "checkpoints-deleted", "internal-error"), also=PENDING,
           media={"text/plain": "the post's trace table, as `bplab trace` prints it (with `Accept: text/plain`)"})
def get_trace(job_id: int):
    """The backward-pass trace of any step (z, a and δ per unit, ∂L/∂W, and the update): recorded, or replayed on
    request for a job that has ended, as for the gradients."""
    step, data, replayed = _step(job_id, "trace")
    if data is None and replayed is None:
        return _pending(job_id, step)
    trace = {**step_arrays.decode_trace(data), "replayed": False} if data is not None else \
        {**replayed["trace"], "replayed": True, "replayed_from": replayed.get("replayed_from")}
    if wants("application/json", "text/plain") == "text/plain":
        return Response(format_trace_table(trace) + "\n", mimetype="text/plain")
    return trace
