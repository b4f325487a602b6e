"""/api/v1/jobs/{id}/gradients and /trace: the full gradients and backward-pass trace of a recorded step."""

from __future__ import annotations

from flask import Blueprint, Response, request

from engine.trace import format_trace_table
from services.store import step_arrays

from ..errors import ApiError
from ..negotiation import wants
from ..openapi import operation
from ..owned import job_or_404
from ..request_session import db
from ..schemas.recorded import Gradients, StepQuery, Trace
from .jobs import JOB_ID

bp = Blueprint("recorded_steps", __name__, url_prefix="/api/v1/jobs")


def _recorded(job_id: int, kind: str) -> tuple[int, bytes]:
    job_or_404(job_id)
    step = request.context.query.step
    data = step_arrays.read(db(), job_id, kind, step, inherited=True)
    if data is None:
        recorded = step_arrays.steps(db(), job_id, kind, inherited=True)
        hint = "record.gradients is not 'full'" if kind == "gradients" else "record.trace did not ask for it"
        detail = f"no {kind} recorded at step {step}: " + (f"recorded steps are {recorded[:20]}" if recorded else hint)
        raise ApiError("not-recorded", detail, field="step", recorded_steps=recorded[:1000])
    return step, data


@bp.get(f"/{JOB_ID}/gradients")
@operation("recorded", ok=Gradients, query=StepQuery, problems=("not-found", "not-recorded"))
def get_gradients(job_id: int):
    """The full gradients of a recorded step (with `record.gradients: "full"`)."""
    step, data = _recorded(job_id, "gradients")
    return Gradients(step=step, gradients={k: v.tolist() for k, v in step_arrays.decode_gradients(data).items()})


@bp.get(f"/{JOB_ID}/trace")
@operation("recorded", ok=Trace, query=StepQuery, problems=("not-found", "not-recorded"),
           media={"text/plain": "the post's trace table, as `bplab trace` prints it (with `Accept: text/plain`)"})
def get_trace(job_id: int):
    """The backward-pass trace of a recorded step: z, a and δ per unit, ∂L/∂W, and the update."""
    _, data = _recorded(job_id, "trace")
    trace = step_arrays.decode_trace(data)
    if wants("application/json", "text/plain") == "text/plain":
        return Response(format_trace_table(trace) + "\n", mimetype="text/plain")
    return trace
