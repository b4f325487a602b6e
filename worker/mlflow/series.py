"""A job's series in MLflow, a turn at a time: the points recorded since its cursor (thinned as
worker/mlflow/thinning.py says), at most TURN_POINTS of them before the next job's turn, so one
long job never holds back another; once an ended job's points are all out, its artifacts and model,
and the job's mirror is `synced`. Points carry a fixed timestamp, so a point sent twice is stored once."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric
from sqlalchemy.orm import Session, sessionmaker

from engine.export import finite
from services.settings import Settings
from services.store import mirror_cursor
from services.store.columns import db_now
from services.store.models import TERMINAL, Job, JobStatus, MirrorState

from .batches import send
from .run_content import created_ms, write_artifacts
from .run_model import log_run_model
from .thinning import first_turn, key_plan, to_send

TURN_POINTS = 5_000  # about a second of MLflow's ingest


def series_turn(sessions: sessionmaker[Session], client: MlflowClient, job_id: int, token: str, settings: Settings,
                budget: int = TURN_POINTS) -> tuple[MirrorState, int]:
    """Send up to `budget` of the job's points (shared evenly by its keys that have any to send),
    and finish the run's artifacts once all are out. (the mirror's state, points sent)."""
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            return MirrorState.synced, 0
        ended = job.status in TERMINAL
        cursor = dict(job.mirror_cursor or {})
        pending = mirror_cursor.points_after(session, job.id, cursor)
        timestamp = created_ms(job)
        plans = {key: to_send(key_plan(job, key, settings), first, values, ended) + (first + values.size,)
                 for key, (first, _, values) in sorted(pending.items(), key=lambda kv: (kv[0] != "loss", kv[0]))}
        wanting = [key for key, (keep, _, _) in plans.items() if keep.size]
        share = max(4, budget // max(1, len(wanting)))
        due = job.mirror_points
        points: list[Metric] = []
        marks_sent: list[tuple[str, int]] = []  # the cursor position each sent point completes
        at_end: list[tuple[str, int]] = []  # positions that need nothing sent (applied once the rest is stored)
        unsent = False
        for key, (keep, marks, stored) in plans.items():
            first, steps, values = pending[key]
            take = first_turn(keep, marks, share)
            unsent |= take < keep.size
            for index, mark in zip(keep[:take].tolist(), marks[:take].tolist(), strict=True):
                if ended and index == stored - 1:  # the last point went with the run's final status
                    at_end.append((key, mark))
                    continue
                points.append(Metric(key, float(values[index - first]), timestamp, int(steps[index - first])))
                marks_sent.append((key, mark))
            due += keep.size - (1 if ended and keep.size and keep[-1] == stored - 1 else 0)  # kept in order: the last point can only be last
            if ended and take == keep.size:
                at_end.append((key, stored))  # past the points thinned away after the last one sent
    sent = job.mirror_points
    done = 0

    def stored_in_mlflow(n: int) -> None:
        nonlocal sent, done
        for key, mark in marks_sent[done:done + n]:
            cursor[key] = max(cursor.get(key, 0), mark)
        done += n
        sent += n
        with sessions.begin() as writer:
            mirror_cursor.save(writer, job_id, token, mirror_cursor=dict(cursor), mirror_points=sent)

    send(client, job.mlflow_run_id, points, [], [], after=stored_in_mlflow)
    for key, mark in at_end:
        cursor[key] = max(cursor.get(key, 0), mark)
    complete = ended and not unsent
    with sessions.begin() as writer:
        mirror_cursor.save(writer, job_id, token, mirror_cursor=cursor, mirror_points=sent, mirror_series_at=db_now(writer),
                           mirror_points_due=sent if complete else max(due, sent))
    if not complete:
        return MirrorState.pending, len(points)
    with sessions() as session:
        job = session.get(Job, job_id)
        model_id = _artifacts(client, session, job, settings.mlflow_log_models)
    if model_id is not None:
        with sessions.begin() as writer:
            mirror_cursor.save(writer, job_id, token, mlflow_model_id=model_id)
    return MirrorState.synced, len(points)


def _artifacts(client: MlflowClient, session: Session, job: Job, log_model: bool) -> str | None:
    """Plots, spec, recorded gradients and traces, and the MLflow model of a job that succeeded
    (repeatable). The model's id, when it has one."""
    with tempfile.TemporaryDirectory(prefix=f"bplab-job{job.id}-") as tmp:
        folder = Path(tmp)
        write_artifacts(session, job, folder)
        client.log_artifacts(job.mlflow_run_id, str(folder))
    if log_model and job.status is JobStatus.succeeded and job.model is not None and finite(job.model):
        return log_run_model(client, session, job, job.mlflow_experiment_id)
    return None
