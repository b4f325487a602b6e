"""One run per job, written from the store by the MLflow worker, never by the training worker.

A pass (`mirror_pass`, run every MLFLOW_FLUSH_SECONDS on the `<queue>.mlflow` queue) claims a batch
of jobs whose runs are behind, ended jobs first, and for each makes sure its run exists (params and
tags on creation, the job's own start time), sends the points recorded since its cursor with
`log_batch` within MLflow's limits, and, once the job has ended, its artifacts and final status with
the job's own end time, so MLflow's Duration is the training time. Every step is safe to repeat:
points carry a fixed timestamp, so a point sent twice is stored once. When MLflow is unreachable the
pass stops, the cursor stays put and the job's mirror reads `pending` with the reason; a later pass
catches up. Training never waits for any of this.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import uuid
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from sqlalchemy.orm import Session, sessionmaker

from services.settings import Settings
from services.store import metrics, mirror_cursor
from services.store.columns import utcnow
from services.store.db import session_factory
from services.store.models import TERMINAL, Job, JobStatus, MirrorState

from .run_content import EPOCH_KEYS, created_ms, job_key, run_params, run_tags, strides, write_artifacts
from .sweep_runs import SweepRunBusy, ensure_sweep_run, experiment_id, finish_pending_sweeps, forget_experiments

logger = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # mlflow/utils/validation.py: MAX_METRICS_PER_BATCH
MAX_PARAMS_TAGS_PER_BATCH = 100
RUN_STATUS = {JobStatus.succeeded: RunStatus.FINISHED, JobStatus.diverged: RunStatus.FAILED,
              JobStatus.failed: RunStatus.FAILED, JobStatus.cancelled: RunStatus.KILLED}
BUSY = "busy"
BATCH_JOBS = 20  # jobs claimed at a time
PASS_SECONDS = 20.0  # a pass keeps taking batches of ended jobs for this long


class MlflowDown(RuntimeError):
    """MLflow could not be reached: the pass stops here, a later one carries on."""


def failure(exc: BaseException) -> tuple[MirrorState, str]:
    """What a failed MLflow call means for the mirror: retry later (`pending`) or give up (`failed`)."""
    if isinstance(exc, MlflowException):
        transient = exc.get_http_status_code() >= 500 or "Connection" in str(exc) or "Max retries" in str(exc)
        return (MirrorState.pending if transient else MirrorState.failed,
                f"MLflow {'unreachable' if transient else 'refused the data'}: {str(exc)[:500]}")
    if isinstance(exc, OSError):  # connection refused, timeouts
        return MirrorState.pending, f"MLflow unreachable: {type(exc).__name__}: {str(exc)[:500]}"
    return MirrorState.pending, f"{type(exc).__name__}: {str(exc)[:500]}"


def mirror_pass(settings: Settings, batch: int = BATCH_JOBS, seconds: float = PASS_SECONDS) -> dict[int, str]:
    """The MLflow worker's periodic work: bring behind runs up to date, ended jobs first, then finish
    the parent runs of ended sweeps. Returns {job_id: mirror state} of the jobs it touched."""
    if not settings.mlflow_tracking_uri:
        return {}
    sessions = session_factory(settings.database_url)
    client = MlflowClient(settings.mlflow_tracking_uri)
    done: dict[int, str] = {}
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            token = str(uuid.uuid4())
            with sessions.begin() as session:
                job_ids = mirror_cursor.claim_behind(session, token, batch)
            if not job_ids:
                break
            ended = _mirror_batch(sessions, client, job_ids, token, settings, done)
            if not ended:  # only running jobs left: their next points come with the next pass
                break
        finish_pending_sweeps(settings)
    except MlflowDown:
        pass
    return done


def _mirror_batch(sessions: sessionmaker[Session], client: MlflowClient, job_ids: list[int], token: str, settings: Settings,
                  done: dict[int, str]) -> int:
    """Mirror each claimed job (releasing it after); raises MlflowDown, releasing the rest, if MLflow is unreachable."""
    ended = 0
    for i, job_id in enumerate(job_ids):
        state, reason = _mirror_one(sessions, client, job_id, token, settings)
        done[job_id] = state.value
        ended += state is MirrorState.synced
        if reason is not None and reason.startswith("MLflow unreachable"):
            with sessions.begin() as session:
                for rest in job_ids[i + 1:]:
                    mirror_cursor.release(session, rest, token)
            raise MlflowDown(reason)
    return ended


def mirror_job(job_id: int, settings: Settings) -> str:
    """One job brought up to date now (under its own lock): its mirror state, or "busy"."""
    sessions = session_factory(settings.database_url)
    if not settings.mlflow_tracking_uri:
        with sessions.begin() as session:
            mirror_cursor.set_state(session, job_id, MirrorState.disabled)
        return MirrorState.disabled.value
    with sessions.begin() as session:
        token = mirror_cursor.acquire(session, job_id)
    if token is None:
        return BUSY
    return _mirror_one(sessions, MlflowClient(settings.mlflow_tracking_uri), job_id, token, settings)[0].value


def _mirror_one(sessions: sessionmaker[Session], client: MlflowClient, job_id: int, token: str,
                settings: Settings) -> tuple[MirrorState, str | None]:
    """Mirror a job whose lock we hold, record the outcome (state, and the reason when it failed), release the lock."""
    try:
        state, reason = _mirror(sessions, client, job_id, token, settings), None
    except Exception as exc:
        if not isinstance(exc, (MlflowException, OSError, SweepRunBusy)):
            logger.exception("mirror of job %s failed", job_id)
        forget_experiments()  # one may have been deleted behind our back
        state, reason = failure(exc)
        logger.warning("mirror of job %s: %s (%s)", job_id, state.value, reason)
    with sessions.begin() as session:
        mirror_cursor.save(session, job_id, token, mirror_state=state, mirror_error=reason)
        mirror_cursor.release(session, job_id, token)
    return state, reason


def _mirror(sessions: sessionmaker[Session], client: MlflowClient, job_id: int, token: str, settings: Settings) -> MirrorState:
    with sessions() as session:
        job = session.get(Job, job_id)
        if job.mlflow_run_id is None:
            experiment, run_id = _ensure_run(client, sessions, job, token, settings)
            with sessions.begin() as writer:
                mirror_cursor.save(writer, job_id, token, mlflow_experiment_id=experiment, mlflow_run_id=run_id)
            session.refresh(job)
        ended = job.status in TERMINAL
        cursor = dict(job.mirror_cursor or {})
        sent = job.mirror_points
        timestamp = created_ms(job)
        step_stride, epoch_stride = strides(job, settings.mlflow_max_points)
        pending = mirror_cursor.points_after(session, job_id, cursor)
        last = metrics.last_points(session, job_id) if ended else {}
    # While the job trains, send at most a budget of points per pass, shared across keys, so a
    # long job's history reaches MLflow at a steady pace; the rest follows once it has ended.
    per_key = None
    if not ended and settings.mlflow_live_points_per_second > 0 and pending:
        per_key = max(1, int(settings.mlflow_live_points_per_second * settings.mlflow_flush_seconds) // len(pending))
    batch: list[Metric] = []
    advanced: dict[str, int] = {}
    for key, (first, steps, values) in pending.items():
        stride = epoch_stride if key in EPOCH_KEYS else step_stride
        taken = 0
        for offset, (step, value) in enumerate(zip(steps.tolist(), values.tolist())):
            if per_key is not None and taken == per_key:
                break
            index = first + offset
            if index % stride == 0:
                batch.append(Metric(key, value, timestamp, step))
                taken += 1
            advanced[key] = index + 1
            if len(batch) == MAX_METRICS_PER_BATCH:
                client.log_batch(job.mlflow_run_id, metrics=batch)
                sent += len(batch)
                batch = []
                cursor.update(advanced)
                with sessions.begin() as writer:
                    mirror_cursor.save(writer, job_id, token, mirror_cursor=dict(cursor), mirror_points=sent)
    # Thinned keys always end on their last step (a repeat of a sent point is stored once).
    batch += [Metric(key, value, timestamp, step) for key, (step, value) in last.items()]
    for i in range(0, len(batch), MAX_METRICS_PER_BATCH):
        client.log_batch(job.mlflow_run_id, metrics=batch[i:i + MAX_METRICS_PER_BATCH])
    sent += len(batch)
    cursor.update(advanced)
    with sessions.begin() as writer:
        mirror_cursor.save(writer, job_id, token, mirror_cursor=cursor, mirror_points=sent)
    if not ended:
        return MirrorState.pending
    with sessions() as session:
        _finish_run(client, session, session.get(Job, job_id))
    return MirrorState.synced


def _ensure_run(client: MlflowClient, sessions: sessionmaker[Session], job: Job, token: str, settings: Settings) -> tuple[str, str]:
    """The job's run, created once with the job's start time. Only when an earlier pass asked for it
    and may have died before storing its id is it looked up (by its job_key tag) first."""
    experiment = experiment_id(client, job.experiment)
    if job.mlflow_run_requested_at is not None:
        found = client.search_runs([experiment], f"tags.job_key = '{job_key(job)}'", max_results=1)
        if found:
            return experiment, found[0].info.run_id
    with sessions.begin() as session:
        mirror_cursor.save(session, job.id, token, mlflow_run_requested_at=utcnow())
    tags = run_tags(job, settings)
    if job.sweep_id is not None:
        tags["mlflow.parentRunId"] = ensure_sweep_run(client, sessions, job.sweep_id)
    started = job.started_at or job.created_at
    run = client.create_run(experiment, start_time=int(started.timestamp() * 1000), run_name=tags["mlflow.runName"], tags=tags)
    params = [Param(k, v) for k, v in run_params(job).items()]
    for i in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run.info.run_id, params=params[i:i + MAX_PARAMS_TAGS_PER_BATCH])
    return experiment, run.info.run_id


def _finish_run(client: MlflowClient, session: Session, job: Job) -> None:
    """Artifacts and the final status with the job's end time, once the job has ended (repeatable)."""
    run_id = job.mlflow_run_id
    with tempfile.TemporaryDirectory(prefix=f"bplab-job{job.id}-") as tmp:
        folder = Path(tmp)
        write_artifacts(session, job, folder)
        client.log_artifacts(run_id, str(folder))
    summary = job.summary or {}
    tags = [RunTag("status", job.status.value)]
    if job.error:
        tags.append(RunTag("error", json.dumps(job.error)[:5000]))
    metrics_final = [Metric(f"summary/{k}", float(v), created_ms(job), 0)
                     for k, v in summary.items() if isinstance(v, (int, float)) and math.isfinite(v)]
    client.log_batch(run_id, metrics=metrics_final, tags=tags)
    ended = job.finished_at or utcnow()
    client.set_terminated(run_id, RunStatus.to_string(RUN_STATUS[job.status]), end_time=int(ended.timestamp() * 1000))
