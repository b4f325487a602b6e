"""/api/v1/jobs/{id}/landscape: the loss around the weights at a step, with the path the weights took.

Computed once by a training worker (it replays the job to the step: training is deterministic) and
served from the store after; until then the answer is 202 with `Retry-After`. A failure is answered
once and forgotten, so asking again tries again."""

from __future__ import annotations

from flask import Blueprint, Response, request

from services.charts.landscape import contour_chart
from services.store.models import TERMINAL

from ..computed import RETRY_AFTER, computed
from ..errors import ApiError
from ..negotiation import wants
from ..openapi import operation
from ..owned import job_or_404
from ..schemas.common import Pending
from ..schemas.landscape import Landscape, LandscapeQuery
from .jobs import JOB_ID

bp = Blueprint("landscape", __name__, url_prefix="/api/v1/jobs")
SVG = {"image/svg+xml": "the contour plot with the path (with `Accept: image/svg+xml`)"}


@bp.get(f"/{JOB_ID}/landscape")
@operation("charts", ok=Landscape, query=LandscapeQuery, problems=("not-found", "not-ended", "over-limit", "not-recorded", "internal-error"),
           media=SVG, also={202: (Pending, "being computed: ask again after `Retry-After` seconds")})
def job_landscape(job_id: int):
    """The training loss on a grid around the weights after `step` steps, along the Hessian's two sharpest
    directions (`top`) or two filter-normalised random ones (`random`), with the recorded steps projected onto
    that plane. An ended job only; computed by a worker and cached (202 until then). With
    `Accept: image/svg+xml`: the contour plot, the path drawn on it."""
    job = job_or_404(job_id)
    query: LandscapeQuery = request.context.query
    if job.status not in TERMINAL:
        raise ApiError("not-ended", f"job {job_id} is {job.status.value}: its landscape is computed once it has ended",
                       status_now=job.status.value)
    step = job.step if query.step is None else query.step
    if step > job.step:
        raise ApiError("bad-query", f"job {job_id} took {job.step:,} steps: step is 0 to {job.step:,}", field="step")
    asked = {"step": step, "directions": query.directions, "points": query.points, "span": query.span}
    done = computed(job_id, "landscape", asked, "landscape")
    if done is None:
        return Pending(status="pending", job_id=job_id, step=step,
                                detail="a worker is replaying the job to the step and computing the grid"), 202, {"Retry-After": RETRY_AFTER}
    answer = Landscape(job_id=job_id, **done.result, seconds=done.seconds, computed_at=done.computed_at.isoformat())
    if wants("application/json", "image/svg+xml") == "image/svg+xml":
        return Response(contour_chart(answer.model_dump(), f"Job {job_id}: loss around step {step:,}"), mimetype="image/svg+xml")
    return answer
