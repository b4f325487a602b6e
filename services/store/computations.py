"""What a training worker computes from an ended job on request (a loss landscape, a replayed step): asked
for by the API (a row without a result), computed by a worker (the result, or why not), then served from
here. The caller commits."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .columns import db_now
from .models import Computation
from .upsert import insert_missing

KINDS = ("landscape", "replay")
RESEND_SECONDS = 60  # a request no worker has started by then is sent again (its message was lost)
STALLED_SECONDS = 600  # one started this long ago without an answer: its worker died; sent again


def key_of(request: dict[str, Any]) -> str:
    """One string per distinct request (its fields sorted), so equal requests share one computation."""
    return json.dumps(request, sort_keys=True, separators=(",", ":"))


def find(session: Session, job_id: int, kind: str, request: dict[str, Any]) -> Computation | None:
    return session.scalar(select(Computation).where(Computation.job_id == job_id, Computation.kind == kind,
                                                    Computation.key == key_of(request)))


def ask(session: Session, job_id: int, kind: str, request: dict[str, Any]) -> Computation:
    """The job's row for `request`, made if it is not there (two requests at once make one)."""
    insert_missing(session, Computation, {"job_id": job_id, "kind": kind, "key": key_of(request), "request": request,
                                          "requested_at": db_now(session)}, ["job_id", "kind", "key"])
    return find(session, job_id, kind, request)


def needs_sending(session: Session, row: Computation) -> bool:
    """A row without an answer whose message a worker should have taken by now (or whose worker died)."""
    if row.result is not None or row.error is not None:
        return False
    now = db_now(session)
    if row.started_at is None:
        return row.requested_at <= now - timedelta(seconds=RESEND_SECONDS)
    return row.started_at <= now - timedelta(seconds=STALLED_SECONDS)


def mark_sent(session: Session, computation_id: int) -> None:
    """Sent again now: the resend clock starts over."""
    session.execute(update(Computation).where(Computation.id == computation_id).values(requested_at=db_now(session), started_at=None))


def start(session: Session, computation_id: int) -> Computation | None:
    """A worker takes the row (None if it is gone or already answered: nothing to do)."""
    row = session.get(Computation, computation_id)
    if row is None or row.result is not None:
        return None
    row.started_at, row.error = db_now(session), None
    return row


def finish(session: Session, computation_id: int, result: dict[str, Any] | None, error: dict[str, Any] | None, seconds: float) -> None:
    session.execute(update(Computation).where(Computation.id == computation_id)
                    .values(result=result, error=error, computed_at=db_now(session), seconds=seconds))


def forget(session: Session, computation_id: int) -> None:
    """A failed row is answered once, then removed: the next request computes it again."""
    session.execute(delete(Computation).where(Computation.id == computation_id))
