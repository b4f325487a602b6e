"""Diagnoses in the store: written with the points that found them (the caller's transaction), read
by the API, the event stream and the MLflow worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .columns import utcnow
from .models import Diagnosis
from .upsert import insert_missing

KEY = ["job_id", "kind", "layer", "step"]


def write(session: Session, job_id: int, events: list[dict[str, Any]]) -> None:
    """The diagnoser's events in order: a beginning inserted (once: a retried attempt finds it again),
    an end recorded on the diagnosis it ends."""
    for event in events:
        key = {"job_id": job_id, "kind": event["kind"], "layer": event["layer"] or "", "step": event["step"]}
        if event["event"] == "began":
            insert_missing(session, Diagnosis, {**key, "severity": event["severity"], "ended_step": None, "sentence": event["sentence"],
                                                "evidence": event["evidence"], "found_at": utcnow()}, KEY)
        else:
            session.execute(update(Diagnosis).where(*(getattr(Diagnosis, k) == v for k, v in key.items()))
                            .values(ended_step=event["ended_step"]))


def of_job(session: Session, job_id: int, after_id: int = 0) -> list[Diagnosis]:
    """The job's diagnoses in the order found (those after `after_id`: what an event stream has not sent)."""
    return list(session.scalars(select(Diagnosis).where(Diagnosis.job_id == job_id, Diagnosis.id > after_id).order_by(Diagnosis.id)))
