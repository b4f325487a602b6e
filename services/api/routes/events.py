"""/api/v1/jobs/{id}/events: Server-Sent Events of a job's status and progress until it ends.

A stream holds one of the server's threads while it is open, so streams are bounded: at most
EVENTS_MAX_PER_OWNER open per owner (a 429 beyond) and EVENTS_MAX_STREAMS in all (a 503 beyond,
always fewer than the server's threads, so other requests are served), each with Retry-After. A
stream ends after EVENTS_IDLE_SECONDS without an event and after EVENTS_MAX_SECONDS in any case;
every event carries an `id` (the status and step it reports) and the stream a `retry`, so a client
reconnects with `Last-Event-ID` and is sent only what changed since (our client and pages do).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, request, stream_with_context
from sqlalchemy.orm import Session, sessionmaker

from engine.problem import plan_document
from services.store import diagnoses, metrics
from services.store.db import session_factory
from services.store.models import TERMINAL, Job

from ..auth import owner
from ..errors import ApiError
from ..openapi import operation
from ..owned import job_or_404
from ..representations import job_model
from ..schemas.common import NoQuery, Out
from ..schemas.jobs import ProgressEvent, StatusEvent, event_stream_schema
from .diagnoses import diagnosis_model
from .jobs import JOB_ID

bp = Blueprint("events", __name__, url_prefix="/api/v1/jobs")
KEEPALIVE_SECONDS = 2.0
EPOCH_FIGURES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


@bp.get(f"/{JOB_ID}/events")
@operation("jobs", query=NoQuery, problems=("not-found", "too-many-streams", "streams-unavailable"),
           media={"text/event-stream": event_stream_schema()})
def job_events(job_id: int):
    """Follow a job as Server-Sent Events: `status` on every change, `progress` as it moves, `diagnosis` as each is found,
    then `end` with the job.
    Reconnect with `Last-Event-ID` when a stream ends before `end` (idle or too long)."""
    job_or_404(job_id)
    settings = current_app.config["SETTINGS"]
    sessions = session_factory(settings.database_url)
    poll = current_app.config.get("EVENTS_POLL_SECONDS", 0.25)
    seen = _last_seen(request.headers.get("Last-Event-ID", ""))
    slot = STREAMS.open(owner(), settings.events_max_per_owner, settings.events_max_streams)
    stream = _event_stream(sessions, job_id, poll, settings.events_max_seconds, settings.events_idle_seconds, seen)
    return Response(_Held(stream_with_context(stream), slot), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class _Streams:
    """The event streams this process has open, per owner and in all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()

    def open(self, who: str, per_owner: int, in_all: int) -> str:
        with self._lock:
            if self._open[who] >= per_owner:
                raise ApiError("too-many-streams", f"{who} has {self._open[who]} event streams open, the most one owner may "
                               f"(EVENTS_MAX_PER_OWNER={per_owner}); close one or poll GET /api/v1/jobs/{{id}}",
                               headers={"Retry-After": str(RETRY_SECONDS)}, limit=per_owner)
            if sum(self._open.values()) >= in_all:
                raise ApiError("streams-unavailable", f"the server has {in_all} event streams open, its most "
                               "(EVENTS_MAX_STREAMS); retry later or poll GET /api/v1/jobs/{id}",
                               headers={"Retry-After": str(RETRY_SECONDS)}, limit=in_all)
            self._open[who] += 1
            return who

    def close(self, who: str) -> None:
        with self._lock:
            self._open[who] -= 1
            if self._open[who] <= 0:
                del self._open[who]

    def count(self) -> int:
        with self._lock:
            return sum(self._open.values())


STREAMS = _Streams()
RETRY_SECONDS = 5


class _Held:
    """The stream as a response body that gives its slot back however it ends: finished, idle, the
    client gone, or closed by the server before it ever started (a generator's `finally` would not run then)."""

    def __init__(self, stream: Iterator[str], slot: str) -> None:
        self.stream, self.slot, self.closed = stream, slot, False

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self.stream
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            STREAMS.close(self.slot)
            getattr(self.stream, "close", lambda: None)()


def _last_seen(header: str) -> tuple[str | None, int | None, int]:
    """(status, step, last diagnosis id) from a Last-Event-ID this stream wrote ("running/120/7"); nothing for anything else."""
    status, _, rest = header.partition("/")
    step, _, diagnosis = rest.partition("/")
    if not (step.isdigit() and len(step) < 12):
        return None, None, 0
    return status or None, int(step), int(diagnosis) if diagnosis.isdigit() and len(diagnosis) < 12 else 0


def _sse(event: str, data: dict | Out, ident: str) -> str:
    payload = data.model_dump_json(by_alias=True) if isinstance(data, Out) else json.dumps(data)
    return f"event: {event}\nid: {ident}\ndata: {payload}\n\n"


def _event_stream(sessions: sessionmaker[Session], job_id: int, poll: float, timeout: float, idle: float,
                  seen: tuple[str | None, int | None, int]) -> Iterator[str]:
    (last_status, last_step, last_diagnosis), started = seen, time.monotonic()
    last_sent = last_event = started
    yield f"retry: {RETRY_SECONDS * 1000}\n\n"
    with sessions() as session:
        steps_per_epoch = plan_document(session.get(Job, job_id).spec)[1].steps_per_epoch
    while time.monotonic() - started < timeout:
        with sessions() as session:
            job = session.get(Job, job_id)
            if job is None:  # deleted while followed
                return
            status, step, total, loss = job.status, job.step, job.total_steps, job.last_loss
            final = job_model(job).model_dump(mode="json", by_alias=True) if status in TERMINAL else None
            # an epoch's figures recorded at step index s exist once s + 1 steps are done: read after the step, they may be
            # of a step the row does not count yet (a flush between the two statements), and wait for the next event
            figures = ({key: point for key, point in metrics.last_points(session, job_id, EPOCH_FIGURES).items() if point[0] < step}
                       if step != last_step else {})
            found = [diagnosis_model(row) for row in diagnoses.of_job(session, job_id, last_diagnosis)]
        ident = f"{status.value}/{step}" + (f"/{last_diagnosis}" if last_diagnosis else "")  # what a reconnect need not be sent again
        if status.value != last_status:
            yield _sse("status", StatusEvent(id=job_id, status=status), ident)
            last_status, last_sent = status.value, time.monotonic()
            last_event = last_sent
        if step != last_step:
            yield _sse("progress", ProgressEvent(id=job_id, step=step, total_steps=total, loss=loss, epoch=step // steps_per_epoch,
                                                 epochs=-(-total // steps_per_epoch),
                                                 **{key: figures[key][1] if key in figures else None for key in EPOCH_FIGURES}),
                       ident)
            last_step, last_sent = step, time.monotonic()
            last_event = last_sent
        for diagnosis in found:  # each the moment the worker has stored it
            last_diagnosis = diagnosis.id
            yield _sse("diagnosis", diagnosis, f"{status.value}/{step}/{last_diagnosis}")
            last_sent = last_event = time.monotonic()
        if final is not None:
            yield _sse("end", final, f"{status.value}/{step}" + (f"/{last_diagnosis}" if last_diagnosis else ""))
            return
        if time.monotonic() - last_event > idle:  # nothing happened for a while: the client reconnects when it wants more
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            # A comment line keeps proxies from closing an idle stream, and lets the server notice a
            # client that left (a write fails), so the thread serving it is freed within seconds.
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        time.sleep(poll)
