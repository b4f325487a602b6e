"""Diagnoses in the store: written with the points that found them (the caller's transaction), read
by the API, the event stream and the MLflow worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import webhooks
from .columns import utcnow
from .models import Diagnosis
from .upsert import insert_missing

KEY = ["job_id", "kind", "layer", "step"]


def write(session: Session, job_id: int, events: list[dict[str, Any]]) -> None:
    """The diagnoser's events in order: a beginning inserted (once: a retried attempt finds it again) and
    queued for the owner's webhooks that asked for its kind, an end recorded on the diagnosis it ends."""
    job = webhooks.owner_and_brief(session, job_id) if any(e["event"] == "began" for e in events) else None
    for event in events:
        key = {"job_id": job_id, "kind": event["kind"], "layer": event["layer"] or "", "step": event["step"]}
        if event["event"] == "began":
            # found before by an earlier attempt of the job (the same spec finds the same): kept, not queued again
            new = session.scalar(select(Diagnosis.id).where(*(getattr(Diagnosis, k) == v for k, v in key.items()))) is None
            insert_missing(session, Diagnosis, {**key, "severity": event["severity"], "ended_step": None, "sentence": event["sentence"],
                                                "evidence": event["evidence"], "found_at": utcnow()}, KEY)
            if new and job is not None:
                found = {k: event[k] for k in ("kind", "step", "layer", "severity", "sentence", "evidence")}
                webhooks.enqueue(session, job[0], event["kind"], {"job": job[1], "diagnosis": found})
        else:
            session.execute(update(Diagnosis).where(*(getattr(Diagnosis, k) == v for k, v in key.items()))
                            .values(ended_step=event["ended_step"]))


def of_job(session: Session, job_id: int, after_id: int = 0) -> list[Diagnosis]:
    """The job's diagnoses in the order found (those after `after_id`: what an event stream has not sent)."""
    return list(session.scalars(select(Diagnosis).where(Diagnosis.job_id == job_id, Diagnosis.id > after_id).order_by(Diagnosis.id)))
