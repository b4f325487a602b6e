"""Webhooks and their deliveries in the store. Events are queued as deliveries in the transaction that
makes them happen (a diagnosis written, a job or sweep ended): the outbox the maintenance worker sends
from, never the training task."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.diagnoses import KINDS

from .columns import db_now
from .models import Job, Sweep, Webhook, WebhookDelivery

EVENTS = (*KINDS, "job.ended", "sweep.ended")


def create(session: Session, owner: str, url: str, events: list[str], secret: str) -> Webhook:
    webhook = Webhook(owner=owner, url=url, events=list(dict.fromkeys(events)), secret=secret, created_at=db_now(session))
    session.add(webhook)
    session.flush()
    return webhook


def of_owner(session: Session, owner: str) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.owner == owner).order_by(Webhook.id)))


def get(session: Session, owner: str, webhook_id: int) -> Webhook | None:
    return session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.owner == owner))


def enqueue(session: Session, owner: str, event: str, payload: dict[str, Any]) -> int:
    """A delivery of `event` for each of the owner's webhooks that asked for it; how many."""
    hooks = [w for w in of_owner(session, owner) if event in w.events]
    session.add_all(WebhookDelivery(webhook_id=w.id, event=event, payload={"event": event, **payload}, state="pending", attempts=0,
                                    next_attempt_at=db_now(session), created_at=db_now(session)) for w in hooks)
    return len(hooks)


def job_ended(session: Session, job_id: int) -> None:
    """`job.ended` for the job's owner's webhooks (called where a job ends). Read as the row stands now,
    not from a job the session loaded before it ended."""
    row = session.execute(select(Job.owner, Job.id, Job.name, Job.experiment, Job.sweep_id, Job.status, Job.summary, Job.error)
                          .where(Job.id == job_id)).one_or_none()
    if row is not None:
        enqueue(session, row.owner, "job.ended", {"job": {**job_brief(row), "status": row.status.value, "summary": row.summary,
                                                          "error": row.error}})


def sweep_ended(session: Session, sweep_id: int) -> None:
    row = session.execute(select(Sweep.owner, Sweep.id, Sweep.name, Sweep.status).where(Sweep.id == sweep_id)).one_or_none()
    if row is not None:
        enqueue(session, row.owner, "sweep.ended", {"sweep": {"id": row.id, "name": row.name, "status": row.status.value}})


def job_brief(job: Any) -> dict[str, Any]:
    """What a delivery says of its job (a Job or a row with those columns)."""
    return {"id": job.id, "name": job.name, "experiment": job.experiment, "sweep_id": job.sweep_id}


def owner_and_brief(session: Session, job_id: int) -> tuple[str, dict[str, Any]] | None:
    row = session.execute(select(Job.owner, Job.id, Job.name, Job.experiment, Job.sweep_id).where(Job.id == job_id)).one_or_none()
    return None if row is None else (row.owner, job_brief(row))


def due(session: Session, now: datetime, limit: int) -> list[tuple[WebhookDelivery, Webhook]]:
    """Pending deliveries whose time has come, oldest first, with their webhook."""
    rows = session.execute(select(WebhookDelivery, Webhook).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                           .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
                           .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
    return [(d, w) for d, w in rows]


def attempted(session: Session, delivery_id: int, status: int | None, error: str | None, max_attempts: int, retry_seconds: float) -> str:
    """Record one attempt: delivered on a 2xx, else retried later (doubling waits, at most an hour) until
    `max_attempts`, then failed. The delivery's state afterwards."""
    delivery = session.get(WebhookDelivery, delivery_id)
    attempts = delivery.attempts + 1
    ok = status is not None and 200 <= status < 300
    state = "delivered" if ok else "failed" if attempts >= max_attempts else "pending"
    wait = min(retry_seconds * 2 ** (attempts - 1), 3600.0)
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(
        attempts=attempts, state=state, last_status=status, last_error=None if ok else (error or f"answered {status}")[:2000],
        delivered_at=db_now(session) if ok else None, next_attempt_at=db_now(session) + timedelta(seconds=wait)))
    return state


def deliveries(session: Session, webhook_id: int, limit: int = 200) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
                                .order_by(WebhookDelivery.id.desc()).limit(limit)))
