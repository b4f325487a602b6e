"""/api/v1/jobs/{id}/checkpoints: the training states a job keeps so any of its steps is replayed or forked
from the nearest (engine/checkpoint_cadence.py chooses how often), and deleting them to free their bytes.

Once deleted, a replay or fork of the job (or of a fork of it) is refused with 409 `checkpoints-deleted`:
it would have to train from step 0, however long the job was."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import select, update

from engine.problem import checkpoint_cadence, plan_document
from services.store import checkpoints, jobs, quota
from services.store.columns import db_now
from services.store.models import TERMINAL, Job

from ..errors import ApiError
from ..openapi import operation
from ..owned import job_or_404
from ..request_session import db, transaction
from ..schemas.common import NoQuery
from ..schemas.recorded import Checkpoints
from .jobs import JOB_ID

bp = Blueprint("checkpoints", __name__, url_prefix="/api/v1/jobs")


def kept_every(spec: dict) -> int:
    """Steps between the kept states of a job of this spec (what its worker keeps)."""
    parsed, sizes = plan_document(spec)
    return checkpoint_cadence(parsed, sizes.n_inputs, sizes.batch_size, sizes.total_steps, sizes.steps_per_epoch)


def require_kept(job_id: int, what: str) -> None:
    """409 `checkpoints-deleted` when the job or an ancestor it replays through deleted its kept checkpoints."""
    ids = jobs.lineage(db(), job_id)
    gone = db().execute(select(Job.id, Job.checkpoints_deleted_at).where(Job.id.in_(ids), Job.checkpoints_deleted_at.is_not(None))).first()
    if gone is not None:
        whose = f"job {job_id}'s" if gone[0] == job_id else f"its ancestor job {gone[0]}'s"
        raise ApiError("checkpoints-deleted", f"{what}: {whose} kept checkpoints were deleted at {gone[1].isoformat()}", job_id=gone[0])


@bp.get(f"/{JOB_ID}/checkpoints")
@operation("recorded", ok=Checkpoints, query=NoQuery, problems=("not-found",))
def get_checkpoints(job_id: int):
    """The states the job keeps (its steps, how often, their bytes): a replay of step k trains on from the latest
    kept at or before k (through its parent for a fork's early steps), so it costs at most `every` steps."""
    job = job_or_404(job_id)
    return Checkpoints(job_id=job_id, every=kept_every(job.spec), steps=checkpoints.kept_steps(db(), [job_id])[job_id],
                       bytes=checkpoints.kept_bytes(db(), job_id), deleted_at=job.checkpoints_deleted_at)


@bp.delete(f"/{JOB_ID}/checkpoints")
@operation("recorded", ok=None, status=204, query=NoQuery, problems=("not-found", "not-ended"))
def delete_checkpoints(job_id: int):
    """Delete the job's kept checkpoints, giving their bytes back to the owner's quota. What it recorded stays;
    its replays and forks (and its forks' replays of steps before their fork step) are refused from then on (409)."""
    job = job_or_404(job_id)
    if job.status not in TERMINAL:
        raise ApiError("not-ended", f"job {job_id} is {job.status.value}: it keeps checkpoints while it trains (cancel it first)",
                       status_now=job.status.value)
    with transaction() as session:
        freed = min(checkpoints.delete_kept(session, job_id), job.reserved_bytes)
        session.execute(update(Job).where(Job.id == job_id).values(checkpoints_deleted_at=db_now(session),
                                                                    reserved_bytes=Job.reserved_bytes - freed),
                        execution_options={"synchronize_session": False})
        quota.release(session, job.owner, freed)
    return "", 204
