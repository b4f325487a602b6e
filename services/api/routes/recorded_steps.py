"""/api/v1/jobs/{id}/gradients and /trace: the full gradients and backward-pass trace of a recorded step."""

from __future__ import annotations

from flask import Blueprint, Response

from engine.trace import format_trace_table
from services.store import step_arrays

from ..errors import ApiError
from ..owned import job_or_404
from ..query import int_arg, wants
from ..request_session import db

bp = Blueprint("recorded_steps", __name__, url_prefix="/api/v1/jobs")


def _recorded(job_id: int, kind: str) -> tuple[int, bytes]:
    job_or_404(job_id)
    step = int_arg("step", minimum=0)
    if step is None:
        raise ApiError(400, "Bad request", "step: required (a recorded step number)", kind="bad-query", field="step")
    data = step_arrays.read(db(), job_id, kind, step)
    if data is None:
        recorded = step_arrays.steps(db(), job_id, kind)
        hint = "record.gradients is not 'full'" if kind == "gradients" else "record.trace did not ask for it"
        detail = f"no {kind} recorded at step {step}: " + (f"recorded steps are {recorded[:20]}" if recorded else hint)
        raise ApiError(404, "Not recorded", detail, kind="not-recorded", recorded_steps=recorded[:1000])
    return step, data


@bp.get("/<id:job_id>/gradients")
def get_gradients(job_id: int):
    step, data = _recorded(job_id, "gradients")
    return {"step": step, "gradients": {k: v.tolist() for k, v in step_arrays.decode_gradients(data).items()}}


@bp.get("/<id:job_id>/trace")
def get_trace(job_id: int):
    """The trace as JSON, or with `Accept: text/plain` as the post's trace table."""
    _, data = _recorded(job_id, "trace")
    trace = step_arrays.decode_trace(data)
    if wants("application/json", "text/plain") == "text/plain":
        return Response(format_trace_table(trace) + "\n", mimetype="text/plain")
    return trace
