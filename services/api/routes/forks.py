"""/api/v1/jobs/{id}/fork and /continue: a job that starts from another's exact state at a step.

The fork is a job like any other (checked like a submission, reserved in the owner's quota, queued
through the outbox); its worker replays the parent to the step (training is deterministic) and
trains on from there with the fork's own settings. Its points before the step are read through from
the parent, never copied (services/store/metrics.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from services.store.models import TERMINAL, JobStatus

from ..errors import ApiError
from ..idempotency import IdempotencyHeaders
from ..openapi import operation
from ..owned import job_or_404
from ..schemas.common import NoQuery
from ..schemas.jobs import ContinueRequest, ForkRequest, Job
from ..submission import invalid
from .checkpoints import require_kept
from .jobs import CREATED_HEADERS, DERIVED_META, JOB_ID, create_derived

bp = Blueprint("forks", __name__, url_prefix="/api/v1/jobs")
# What a fork may change: nothing that changes the network's shape, its initial weights or the data it sees.
FORKABLE = ("optimizer", "steps", "epochs", "record", "diagnose", "model.dropout")


def _forkable(path: str) -> bool:
    return any(path == root or path.startswith((root + ".", root + "[")) for root in FORKABLE)


def _fork(parent_id: int, step: int | None, changes: dict[str, Any], meta: dict[str, Any]):
    parent = job_or_404(parent_id)
    step = parent.step if step is None else step
    if step > parent.step:
        raise ApiError("invalid-input", f"job {parent_id} took {parent.step:,} steps: a fork starts at step 0 to {parent.step:,}",
                       field="step")
    if parent.status == JobStatus.diverged and step == parent.step:
        raise ApiError("invalid-input", f"job {parent_id} diverged at step {step:,}: fork it at an earlier step", field="step")
    if parent.status not in TERMINAL and parent.status != JobStatus.running:
        raise ApiError("not-ended", f"job {parent_id} is {parent.status.value}: it has no steps to fork from yet",
                       status_now=parent.status.value)
    require_kept(parent_id, f"job {parent_id} cannot be forked")
    refused = [path for path in changes if not _forkable(path)]
    if refused:
        raise invalid([(f"set.{path}", f"a fork keeps the network's shape, its initialisation and the data: it may change "
                        f"{', '.join(FORKABLE)}") for path in refused])
    return create_derived(parent, changes, meta, ("forked_from", f"{parent_id}@{step}"), forked_from=(parent_id, step))


@bp.post(f"/{JOB_ID}/fork")
@operation("jobs", ok=Job, status=202, body=ForkRequest, body_kind="invalid-spec", headers=IdempotencyHeaders, query=NoQuery,
           problems=("not-found", "not-ended", "invalid-input", "checkpoints-deleted", "idempotency-key-reused", "over-limit",
                     "too-many-requests"),
           response_headers=CREATED_HEADERS)
def fork_job(job_id: int):
    """A new job that starts from this one's exact state after `step` steps (its weights, optimizer state, random
    stream and place in the epoch) and trains on with fields changed by dotted path (`set`): the optimizer and its
    schedule, clipping, `model.dropout`, `steps` or `epochs`, `record`, `diagnose`. An optimizer of another `name`
    starts its state fresh. Checked like a submission. Its steps before `step` are the parent's, read through it
    (`forked_from` says whose); with an empty `set` it is bitwise the parent from `step` on."""
    fork: ForkRequest = request.context.json
    return _fork(job_id, fork.step, fork.set, fork.model_dump(include=DERIVED_META, exclude_none=True))


@bp.post(f"/{JOB_ID}/continue")
@operation("jobs", ok=Job, status=202, body=ContinueRequest, body_kind="invalid-spec", headers=IdempotencyHeaders, query=NoQuery,
           problems=("not-found", "not-ended", "invalid-input", "checkpoints-deleted", "idempotency-key-reused", "over-limit",
                     "too-many-requests"),
           response_headers=CREATED_HEADERS)
def continue_job(job_id: int):
    """Train a finished job further: a fork at its last step with `steps` (or `epochs`) more, whichever its spec
    counts. With a constant learning rate (or a `step` schedule) it is bitwise one job trained for the total from the
    start; a `cosine` schedule without `t_max` runs its cosine over the new total, so the rates after the fork step
    are not the parent's."""
    more: ContinueRequest = request.context.json
    parent = job_or_404(job_id)
    if parent.status != JobStatus.succeeded:
        raise ApiError("not-ended", f"job {job_id} is {parent.status.value}: only a job that succeeded is continued (fork a "
                       "stopped one at a step instead)", status_now=parent.status.value)
    spec = parent.spec
    counts = "steps" if spec.get("steps") is not None else "epochs"
    given = {"steps": more.steps, "epochs": more.epochs}
    if given[counts] is None or given["steps" if counts == "epochs" else "epochs"] is not None:
        raise ApiError("invalid-input", f"job {job_id}'s spec counts {counts}: continue it by {counts}", field=counts)
    changes = {counts: (spec.get(counts) or 1) + given[counts]}
    return _fork(job_id, parent.step, changes, {"name": more.name})
