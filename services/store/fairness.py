"""Fair turns across owners, decided when a worker is about to start a job.

Messages reach workers in the order jobs were queued, so one owner's 400 queued jobs would keep
another owner's single job waiting behind them all. Instead, before claiming the job of the message
it holds, a worker asks `turn_instead` whose turn it is: among the owners with a job waiting, the
one with the fewest jobs running, and of equals the one whose last job started longest ago (so one
worker alternates between owners). If that is another owner, the worker trains that owner's oldest
waiting job instead and sends the message's own job to the back of the queue (its job id is all a
message holds; a duplicate message finds its job claimed and does nothing). So no owner's queue
keeps another owner's job from starting longer than the jobs (or stacks) already running take, and
an owner alone on the service never waits (with AUTH=off everything is one owner's).

Only jobs whose message was sent within `fresh_seconds` count as waiting: a job whose message the
broker lost is the outbox's to resend, and must not keep being chosen over others.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .columns import db_now
from .models import Dispatch, Job, JobStatus, OwnerUsage
from .upsert import insert_missing

NEVER = datetime.min.replace(tzinfo=UTC)


def turn_instead(session: Session, job_id: int, fresh_seconds: float) -> int | None:
    """Another owner's waiting job to train before this queued one, or None when it is this job's turn."""
    mine = session.scalar(select(Job.owner).where(Job.id == job_id, Job.status == JobStatus.queued))
    if mine is None:
        return None
    cutoff = db_now(session) - timedelta(seconds=fresh_seconds)
    waiting = dict(session.execute(select(Job.owner, func.min(Job.id)).join(Dispatch, Dispatch.job_id == Job.id)
                                   .where(Job.status == JobStatus.queued, Job.owner != mine, Dispatch.sent_at >= cutoff)
                                   .group_by(Job.owner)).all())
    if not waiting:
        return None
    owners = [mine, *waiting]
    running = dict(session.execute(select(Job.owner, func.count()).where(Job.status == JobStatus.running, Job.owner.in_(owners))
                                   .group_by(Job.owner)).all())
    last = dict(session.execute(select(OwnerUsage.owner, OwnerUsage.last_started_at).where(OwnerUsage.owner.in_(owners))).all())

    def turn(owner: str) -> tuple[int, datetime]:
        return running.get(owner, 0), last.get(owner) or NEVER

    first = min(waiting, key=turn)
    return waiting[first] if turn(first) < turn(mine) else None


def started(session: Session, owner: str) -> None:
    """A job of `owner` starts now (in its claim's transaction)."""
    insert_missing(session, OwnerUsage, {"owner": owner, "reserved_bytes": 0}, ["owner"])
    session.execute(update(OwnerUsage).where(OwnerUsage.owner == owner).values(last_started_at=db_now(session)),
                    execution_options={"synchronize_session": False})
