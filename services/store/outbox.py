"""The outbox: queued jobs to hand to the broker until a worker has them.

A job's outbox row is written in the transaction that queues it (`jobs.create_job`, the reaper's
requeue) and deleted in the one that claims it. Once that transaction has committed, `send` tries
the broker once (no waiting on a Redis that is down); the reaper's periodic `send_pending` sends
rows never sent, and sends again a job whose message the broker lost (a Redis restarted without
persistence): sent long ago, still unclaimed, and the queue is empty. A message sent twice is
harmless: a worker's claim is a compare-and-set, so a job trains once.

A submission saves itself a second transaction: its row is written already marked sent, the job is
`publish`ed right after the commit, and only if the broker refuses is the mark taken back
(`unmark_sent`), so the reaper sends it at once. (A request that died between its commit and the
publish leaves a row marked sent: the lost-message rule above sends it.)
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from ..broker.celery_config import enqueue_training, queued_messages
from ..settings import Settings
from .columns import db_now
from .models import Dispatch, Job, JobStatus

logger = logging.getLogger(__name__)
HARD_LIMIT_GRACE_SECONDS = 10  # Celery kills the task this long after the job's hard limit (the reaper acts first)
FRESH_SECONDS = 2.0  # rows this young are left to the request that wrote them


def add(session: Session, job_id: int, marked_sent: bool = False) -> None:
    """The job's outbox row; `marked_sent`: the caller publishes it itself once it has committed."""
    now = db_now(session)
    session.add(Dispatch(job_id=job_id, created_at=now, sent_at=now if marked_sent else None))


def publish(job_id: int, hard_time_limit: int | None, settings: Settings) -> bool:
    """Hand one committed job to the broker; False (logged) when the broker does not take it."""
    try:
        enqueue_training(job_id, settings, hard_time_limit + HARD_LIMIT_GRACE_SECONDS if hard_time_limit else None)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the outbox keeps the job
        logger.warning("broker unavailable (%s: %s); job %s waits in the outbox", type(exc).__name__, exc, job_id)
        return False
    return True


def unmark_sent(session: Session, job_ids: list[int]) -> None:
    """Rows marked sent whose publish failed: the reaper sends them."""
    session.execute(update(Dispatch).where(Dispatch.job_id.in_(job_ids)).values(sent_at=None))


def remove(session: Session, job_id: int) -> None:
    session.execute(delete(Dispatch).where(Dispatch.job_id == job_id))


def send(session: Session, job_ids: list[int], settings: Settings) -> int:
    """Publish each job's message and mark its outbox row sent; stops at the first broker error.

    Call it once the transaction that queued the jobs has committed (a worker must find them).
    Returns how many were sent."""
    if not job_ids:
        return 0
    limits = dict(session.execute(select(Job.id, Job.hard_time_limit).where(Job.id.in_(job_ids))).all())
    sent: list[int] = []
    for job_id in job_ids:
        if not publish(job_id, limits.get(job_id), settings):
            break
        sent.append(job_id)
    if sent:
        session.execute(update(Dispatch).where(Dispatch.job_id.in_(sent)).values(sent_at=db_now(session)))
    return len(sent)


def send_pending(session: Session, settings: Settings, limit: int = 1000) -> int:
    """Send outbox rows never sent, and again those whose message the broker evidently lost."""
    now = db_now(session)
    # Rows of jobs that are no longer queued (cancelled while waiting) have nothing left to do.
    session.execute(delete(Dispatch).where(exists().where(Job.id == Dispatch.job_id, Job.status != JobStatus.queued)))
    lost = Dispatch.sent_at.is_(None)
    stale = Dispatch.sent_at <= now - timedelta(seconds=settings.resend_after)
    if session.scalar(select(func.count()).select_from(Dispatch).where(stale)) and _queue_is_empty(settings):
        lost = or_(lost, stale)
    job_ids = list(session.scalars(select(Dispatch.job_id).where(lost, Dispatch.created_at <= now - timedelta(seconds=FRESH_SECONDS))
                                   .group_by(Dispatch.job_id).order_by(func.min(Dispatch.id)).limit(limit)))
    return send(session, job_ids, settings)


def _queue_is_empty(settings: Settings) -> bool:
    try:
        return queued_messages(settings) == 0
    except Exception:  # noqa: BLE001 - broker down: nothing can be sent now anyway
        return False


def pending(session: Session) -> int:
    """How many queued jobs no worker has claimed yet (shown by /readyz)."""
    return session.scalar(select(func.count(func.distinct(Dispatch.job_id))))
