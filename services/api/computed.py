"""What a training worker computes from an ended job on request (services/store/computations.py), as the
routes that serve it ask for it: the result once it is there; None while it is computed (the route answers
202 with `Retry-After`), the message sent again if it was evidently lost; a failure answered once as the
problem it is, then forgotten so the next request tries again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app

from services.broker.celery_config import enqueue_computation
from services.store import computations

from .errors import ApiError
from .request_session import transaction

RETRY_AFTER = "1"


@dataclass(frozen=True)
class Computed:
    result: dict[str, Any]
    seconds: float
    computed_at: datetime


def _send(computation_id: int) -> None:
    try:
        enqueue_computation(computation_id, current_app.config["SETTINGS"])
    except Exception:  # noqa: BLE001 - the broker is down: the row waits, and a later request sends it again
        current_app.logger.warning("computation %s: the broker did not take it; the next request sends it again", computation_id)


def computed(job_id: int, kind: str, asked: dict[str, Any], what: str) -> Computed | None:
    """The result of `asked` for the job, or None while a worker computes it (asked of one now if need be)."""
    with transaction() as session:
        row = computations.find(session, job_id, kind, asked)
        send = row is None
        if send:
            row = computations.ask(session, job_id, kind, asked)
        elif row.error is not None:
            computations.forget(session, row.id)
        elif computations.needs_sending(session, row):
            computations.mark_sent(session, row.id)
            send = True
        row_id, result, error, seconds, computed_at = row.id, row.result, row.error, row.seconds, row.computed_at
    if error is not None:
        raise ApiError(error.get("kind", "internal-error"), f"job {job_id}'s {what}: {error['message']}", field=error.get("field"),
                       **error.get("members", {}))
    if result is None:
        if send:
            _send(row_id)
        return None
    return Computed(result, seconds, computed_at)
