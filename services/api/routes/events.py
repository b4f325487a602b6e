"""/api/v1/jobs/{id}/events: Server-Sent Events of a job's status and progress until it ends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, stream_with_context

from engine.problem import plan_document
from services.store import metrics
from services.store.db import session_factory
from services.store.models import TERMINAL, Job

from ..openapi import operation
from ..owned import job_or_404
from ..representations import job_model
from ..schemas.common import NoQuery, Out
from ..schemas.jobs import ProgressEvent, StatusEvent, event_stream_schema
from .jobs import JOB_ID

bp = Blueprint("events", __name__, url_prefix="/api/v1/jobs")
KEEPALIVE_SECONDS = 2.0
EPOCH_FIGURES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


@bp.get(f"/{JOB_ID}/events")
@operation("jobs", query=NoQuery, problems=("not-found",),
           media={"text/event-stream": event_stream_schema()})
def job_events(job_id: int):
    """Follow a job as Server-Sent Events: `status` on every change, `progress` as it moves, then `end` with the job."""
    job_or_404(job_id)
    sessions = session_factory(current_app.config["SETTINGS"].database_url)
    poll = current_app.config.get("EVENTS_POLL_SECONDS", 0.25)
    timeout = current_app.config.get("EVENTS_MAX_SECONDS", 3600)
    return Response(stream_with_context(_event_stream(sessions, job_id, poll, timeout)), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(event: str, data: dict | Out) -> str:
    payload = data.model_dump_json(by_alias=True) if isinstance(data, Out) else json.dumps(data)
    return f"event: {event}\ndata: {payload}\n\n"


def _event_stream(sessions, job_id: int, poll: float, timeout: float) -> Iterator[str]:
    last_status, last_step, started = None, None, time.monotonic()
    last_sent = started
    with sessions() as session:
        steps_per_epoch = plan_document(session.get(Job, job_id).spec)[1].steps_per_epoch
    while time.monotonic() - started < timeout:
        with sessions() as session:
            job = session.get(Job, job_id)
            if job is None:  # deleted while followed
                return
            status, step, total, loss = job.status, job.step, job.total_steps, job.last_loss
            final = job_model(job).model_dump(mode="json", by_alias=True) if status in TERMINAL else None
            figures = metrics.last_points(session, job_id, EPOCH_FIGURES) if step != last_step else {}
        if status != last_status:
            yield _sse("status", StatusEvent(id=job_id, status=status))
            last_status, last_sent = status, time.monotonic()
        if step != last_step:
            yield _sse("progress", ProgressEvent(id=job_id, step=step, total_steps=total, loss=loss, epoch=step // steps_per_epoch,
                                                 epochs=-(-total // steps_per_epoch),
                                                 **{key: figures[key][1] if key in figures else None for key in EPOCH_FIGURES}))
            last_step, last_sent = step, time.monotonic()
        if final is not None:
            yield _sse("end", final)
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            # A comment line keeps proxies from closing an idle stream, and lets the server notice a
            # client that left (a write fails), so the thread serving it is freed within seconds.
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        time.sleep(poll)
