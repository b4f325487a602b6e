"""One run per job, written from the store.

`mirror_job(job_id)` takes the job's mirror lock, makes sure its run exists (params and tags on
creation), sends the points recorded since the cursor with `log_batch` in chunks within MLflow's
limits, and, once the job has ended, its artifacts and final status. Every call is safe to repeat:
points carry a fixed timestamp, so a point sent twice is stored once. When MLflow is unreachable
the cursor stays put and the job's mirror reads `pending` with the reason; the periodic back-fill
(`backfill`) picks it up later.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import threading
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from sqlalchemy.orm import Session, sessionmaker

from services.settings import Settings
from services.store import metrics, mirror_cursor
from services.store.db import session_factory
from services.store.models import TERMINAL, Job, JobStatus, MirrorState

from .run_content import EPOCH_KEYS, created_ms, job_key, run_params, run_tags, strides, write_artifacts
from .sweep_runs import SweepRunBusy, ensure_sweep_run, experiment_id, finish_pending_sweeps

logger = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # mlflow/utils/validation.py: MAX_METRICS_PER_BATCH
MAX_PARAMS_TAGS_PER_BATCH = 100
RUN_STATUS = {JobStatus.succeeded: RunStatus.FINISHED, JobStatus.diverged: RunStatus.FAILED,
              JobStatus.failed: RunStatus.FAILED, JobStatus.cancelled: RunStatus.KILLED}
BUSY = "busy"


def failure(exc: BaseException) -> tuple[MirrorState, str]:
    """What a failed MLflow call means for the mirror: retry later (`pending`) or give up (`failed`)."""
    if isinstance(exc, MlflowException):
        transient = exc.get_http_status_code() >= 500 or "Connection" in str(exc) or "Max retries" in str(exc)
        return (MirrorState.pending if transient else MirrorState.failed,
                f"MLflow {'unreachable' if transient else 'refused the data'}: {str(exc)[:500]}")
    if isinstance(exc, OSError):  # connection refused, timeouts
        return MirrorState.pending, f"MLflow unreachable: {type(exc).__name__}: {str(exc)[:500]}"
    if isinstance(exc, SweepRunBusy):
        return MirrorState.pending, str(exc)
    return MirrorState.pending, f"{type(exc).__name__}: {str(exc)[:500]}"


def mirror_job(job_id: int, settings: Settings) -> str:
    """One pass: bring the job's MLflow run up to date with the store. Returns the mirror state (or "busy")."""
    sessions = session_factory(settings.database_url)
    if not settings.mlflow_tracking_uri:
        with sessions.begin() as session:
            mirror_cursor.set_state(session, job_id, MirrorState.disabled)
        return MirrorState.disabled.value
    with sessions.begin() as session:
        token = mirror_cursor.acquire(session, job_id)
    if token is None:
        return BUSY
    try:
        state, reason = _mirror(sessions, job_id, token, settings), None
    except Exception as exc:
        if not isinstance(exc, (MlflowException, OSError, SweepRunBusy)):
            logger.exception("mirror of job %s failed", job_id)
        state, reason = failure(exc)
        logger.warning("mirror of job %s: %s (%s)", job_id, state.value, reason)
    with sessions.begin() as session:
        mirror_cursor.save(session, job_id, token, mirror_state=state, mirror_error=reason)
        mirror_cursor.release(session, job_id, token)
    return state.value


def _mirror(sessions: sessionmaker[Session], job_id: int, token: str, settings: Settings) -> MirrorState:
    client = MlflowClient(settings.mlflow_tracking_uri)
    with sessions() as session:
        job = session.get(Job, job_id)
        if job.mlflow_run_id is None:
            experiment, run_id = _ensure_run(client, sessions, job, settings)
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
    # While the job trains, send at most a budget of points per pass, shared across keys, so the
    # mirror (and an MLflow server on the same cores) never slows training; the rest follows at the end.
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


def _ensure_run(client: MlflowClient, sessions: sessionmaker[Session], job: Job, settings: Settings) -> tuple[str, str]:
    """The job's run, created once: found by its job_key tag if an earlier attempt created it.
    A sweep's jobs are nested under the sweep's parent run."""
    experiment = experiment_id(client, job.experiment)
    found = client.search_runs([experiment], f"tags.job_key = '{job_key(job)}'", max_results=1)
    if found:
        return experiment, found[0].info.run_id
    tags = run_tags(job, settings)
    if job.sweep_id is not None:
        tags["mlflow.parentRunId"] = ensure_sweep_run(client, sessions, job.sweep_id)
    run = client.create_run(experiment, run_name=tags["mlflow.runName"], tags=tags)
    params = [Param(k, v) for k, v in run_params(job).items()]
    for i in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run.info.run_id, params=params[i:i + MAX_PARAMS_TAGS_PER_BATCH])
    return experiment, run.info.run_id


def _finish_run(client: MlflowClient, session: Session, job: Job) -> None:
    """Artifacts and the final status, once the job has ended (repeatable)."""
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
    client.set_terminated(run_id, RunStatus.to_string(RUN_STATUS[job.status]))


def backfill(settings: Settings) -> dict[int, str]:
    """Complete the runs of ended jobs, and finish the parent runs of ended sweeps, that are behind."""
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        job_ids = mirror_cursor.jobs_to_backfill(session)
    done = {job_id: mirror_job(job_id, settings) for job_id in job_ids}
    finish_pending_sweeps(settings)
    return done


class LiveMirror:
    """Mirrors a running job every MLFLOW_FLUSH_SECONDS from a background thread, so the training
    loop never waits on MLflow."""

    def __init__(self, job_id: int, settings: Settings):
        self.job_id, self.settings = job_id, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"mlflow-mirror-{job_id}", daemon=True)

    def __enter__(self) -> LiveMirror:
        if self.settings.mlflow_tracking_uri:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.mlflow_flush_seconds):
            try:
                mirror_job(self.job_id, self.settings)
            except Exception:
                logger.exception("live mirror of job %s", self.job_id)
