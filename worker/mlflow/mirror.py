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
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from sqlalchemy.orm import Session, sessionmaker

from engine.export import finite
from services.jobs.public_errors import describe
from services.mlflow.run_params import log_scale_params
from services.settings import Settings
from services.store import housekeeping, metrics, mirror_cursor
from services.store.columns import utcnow
from services.store.db import session_factory
from services.store.models import TERMINAL, Job, JobStatus, MirrorState, Sweep

from .experiments import ExperimentTaken, experiment_id, forget_experiments
from .run_content import EPOCH_KEYS, created_ms, job_key, run_params, run_tags, strides, write_artifacts
from .run_inputs import log_dataset_inputs
from .run_model import delete_run_models, log_run_model
from .sweep_runs import SweepRunBusy, ensure_sweep_run, finish_pending_sweeps

logger = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # mlflow/utils/validation.py: MAX_METRICS_PER_BATCH
MAX_PARAMS_TAGS_PER_BATCH = 100
RUN_STATUS = {JobStatus.succeeded: RunStatus.FINISHED, JobStatus.diverged: RunStatus.FAILED,
              JobStatus.failed: RunStatus.FAILED, JobStatus.cancelled: RunStatus.KILLED}
BATCH_JOBS = 20  # jobs claimed at a time
THREADS = 2  # jobs mirrored at once: one's plots are drawn while the server takes another's points (more only contend)
PASS_SECONDS = 20.0  # a pass keeps taking batches of ended jobs for this long


class MlflowDown(RuntimeError):
    """MLflow could not be reached: the pass stops here, a later one carries on."""


def failure(exc: BaseException) -> tuple[MirrorState, str]:
    """What a failed MLflow call means for the mirror: retry later (`pending`) or give up (`failed`)."""
    if isinstance(exc, ExperimentTaken):
        return MirrorState.failed, str(exc)
    if isinstance(exc, MlflowException):
        transient = exc.get_http_status_code() >= 500 or "Connection" in str(exc) or "Max retries" in str(exc)
        return (MirrorState.pending if transient else MirrorState.failed,
                f"MLflow {'unreachable' if transient else 'refused the data'}: {describe(exc)}")
    if isinstance(exc, OSError):  # connection refused, timeouts
        return MirrorState.pending, f"MLflow unreachable: {describe(exc)}"
    return MirrorState.pending, describe(exc)


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
        delete_runs(settings)
    except MlflowDown:
        pass
    return done


def _mirror_batch(sessions: sessionmaker[Session], client: MlflowClient, job_ids: list[int], token: str, settings: Settings,
                  done: dict[int, str]) -> int:
    """Mirror the claimed jobs, THREADS at a time so the server ingests one job's points while another's
    plots are drawn; each job's lock is released after it. Raises MlflowDown (the jobs not yet
    started released) once MLflow proves unreachable. Returns how many runs it completed."""
    down = threading.Event()

    def one(job_id: int) -> MirrorState | None:
        if down.is_set():
            with sessions.begin() as session:
                mirror_cursor.release(session, job_id, token)
            return None
        state, reason = _mirror_one(sessions, client, job_id, token, settings)
        if reason is not None and reason.startswith("MLflow unreachable"):
            down.set()
        return state

    with ThreadPoolExecutor(THREADS, thread_name_prefix="mlflow-mirror") as pool:
        states = dict(zip(job_ids, pool.map(one, job_ids), strict=True))
    done.update({job_id: state.value for job_id, state in states.items() if state is not None})
    if down.is_set():
        raise MlflowDown("MLflow unreachable")
    return sum(state is MirrorState.synced for state in states.values())


def _mirror_one(sessions: sessionmaker[Session], client: MlflowClient, job_id: int, token: str,
                settings: Settings) -> tuple[MirrorState, str | None]:
    """Mirror a job whose lock we hold, record the outcome (state, and the reason when it failed), release the lock."""
    try:
        state, reason = _mirror(sessions, client, job_id, token, settings), None
    except Exception as exc:
        if not isinstance(exc, (MlflowException, OSError, SweepRunBusy, ExperimentTaken)):
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
        if job is None:  # deleted since it was claimed
            return MirrorState.synced
        if job.mlflow_run_id is None:
            experiment, run_id = _ensure_run(client, sessions, job, token, settings)
            with sessions.begin() as writer:
                stored = mirror_cursor.save(writer, job_id, token, mlflow_experiment_id=experiment, mlflow_run_id=run_id)
            if not stored and session.get(Job, job_id, populate_existing=True) is None:  # deleted while its run was made
                client.delete_run(run_id)
                return MirrorState.synced
            session.refresh(job)
        if job.mirror_state is MirrorState.synced:  # only its name, tags or archived flag changed
            _send_metadata(client, sessions, job, token, settings)
            return MirrorState.synced
        ended = job.status in TERMINAL
        if job.mirror_meta_stale and not ended:  # renamed or retagged while it trains
            _send_metadata(client, sessions, job, token, settings)
        cursor = dict(job.mirror_cursor or {})
        sent = job.mirror_points
        # re-sending the same value is harmless
        params = [Param(k, v) for k, v in run_params(job, _log_names(session, job)).items()] if sent == 0 else []
        points, marks, advanced = _points_to_send(session, job, cursor, ended, settings)
        extra_metrics, tags = _final_status(session, job) if ended else ([], [])
    metrics_out = points + extra_metrics
    done = 0
    for batch_metrics, batch_params, batch_tags in _batches(metrics_out, params, tags):
        client.log_batch(job.mlflow_run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)
        for key, next_index in marks[done:done + len(batch_metrics)]:
            cursor[key] = max(cursor.get(key, 0), next_index)
        done += len(batch_metrics)
        sent += len(batch_metrics)
        with sessions.begin() as writer:
            mirror_cursor.save(writer, job_id, token, mirror_cursor=dict(cursor), mirror_points=sent)
    cursor.update(advanced)  # points thinned away after the last one sent
    with sessions.begin() as writer:
        mirror_cursor.save(writer, job_id, token, mirror_cursor=cursor, mirror_points=sent)
    if not ended:
        return MirrorState.pending
    with sessions() as session:
        job = session.get(Job, job_id)
        model_id = _finish_run(client, session, job, settings.mlflow_log_models)
        if model_id is not None:
            with sessions.begin() as writer:
                mirror_cursor.save(writer, job_id, token, mlflow_model_id=model_id)
        if job.mirror_meta_stale:
            _send_metadata(client, sessions, job, token, settings)
    return MirrorState.synced


SYSTEM_TAGS = frozenset({"job_id", "job_key", "job_name", "job_url", "status", "error", "sweep_id"})


def _send_metadata(client: MlflowClient, sessions: sessionmaker[Session], job: Job, token: str, settings: Settings) -> None:
    """The job's name and tags as they are now (tags removed from the job are removed from the run),
    and the run deleted while the job is archived, restored when it is not (MLflow's soft delete)."""
    run = client.get_run(job.mlflow_run_id)
    if run.info.lifecycle_stage == "deleted":
        client.restore_run(job.mlflow_run_id)  # a deleted run takes no tags
    tags = run_tags(job, settings)
    for key in run.data.tags:
        if key not in tags and key not in SYSTEM_TAGS and not key.startswith("mlflow."):
            client.delete_tag(job.mlflow_run_id, key)
    if "job_name" in run.data.tags and not job.name:
        client.delete_tag(job.mlflow_run_id, "job_name")
    client.log_batch(job.mlflow_run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    if job.archived:
        client.delete_run(job.mlflow_run_id)
    with sessions.begin() as writer:
        mirror_cursor.save(writer, job.id, token, mirror_meta_stale=False)


def delete_runs(settings: Settings, limit: int = 100) -> int:
    """Delete the MLflow runs of deleted jobs (MLflow's soft delete: `mlflow gc` purges them); how many."""
    sessions = session_factory(settings.database_url)
    client = MlflowClient(settings.mlflow_tracking_uri)
    with sessions() as session:
        run_ids = housekeeping.pending_deletions(session, limit)
    for run_id in run_ids:
        try:
            delete_run_models(client, run_id)
            client.delete_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                logger.warning("deleting MLflow run %s: %s (retried next pass)", run_id, describe(exc))
                return 0
        except OSError as exc:
            logger.warning("deleting MLflow run %s: %s (retried next pass)", run_id, describe(exc))
            return 0
        with sessions.begin() as session:
            housekeeping.deletion_done(session, run_id)
    return len(run_ids)


def _log_names(session: Session, job: Job) -> set[str]:
    sweep = session.get(Sweep, job.sweep_id) if job.sweep_id is not None else None
    return log_scale_params(sweep.request if sweep is not None else None)


def _points_to_send(session: Session, job: Job, cursor: dict[str, int], ended: bool,
                    settings: Settings) -> tuple[list[Metric], list[tuple[str, int]], dict[str, int]]:
    """The points after the cursor that MLflow gets (every stride-th), each with the cursor position
    it completes, and every key's position once all are sent."""
    timestamp = created_ms(job)  # fixed per job: a point sent twice is stored once
    step_stride, epoch_stride = strides(job, settings.mlflow_max_points)
    pending = mirror_cursor.points_after(session, job.id, cursor)
    # While the job trains, send at most a budget of points per pass, shared across keys, so a
    # long job's history reaches MLflow at a steady pace; the rest follows once it has ended.
    per_key = None
    if not ended and settings.mlflow_live_points_per_second > 0 and pending:
        per_key = max(1, int(settings.mlflow_live_points_per_second * settings.mlflow_flush_seconds) // len(pending))
    points: list[Metric] = []
    marks: list[tuple[str, int]] = []
    advanced: dict[str, int] = {}
    for key, (first, steps, values) in pending.items():
        stride = epoch_stride if key in EPOCH_KEYS else step_stride
        taken = 0
        for offset, (step, value) in enumerate(zip(steps.tolist(), values.tolist(), strict=True)):
            if per_key is not None and taken == per_key:
                break
            index = first + offset
            if index % stride == 0:
                points.append(Metric(key, value, timestamp, step))
                marks.append((key, index + 1))
                taken += 1
            advanced[key] = index + 1
    if ended:  # thinned keys always end on their last step; one already sent is not sent again
        for key, (step, value) in metrics.last_points(session, job.id).items():
            last_index = advanced.get(key, cursor.get(key, 0)) - 1
            if last_index % (epoch_stride if key in EPOCH_KEYS else step_stride) != 0:
                points.append(Metric(key, value, timestamp, step))
    return points, marks, advanced


def _final_status(session: Session, job: Job) -> tuple[list[Metric], list[RunTag]]:
    """The summary figures and status tags an ended job's run gets with its last points."""
    tags = [RunTag("status", job.status.value)]
    if job.error:
        tags.append(RunTag("error", json.dumps(job.error)[:5000]))
    summary = [Metric(f"summary/{k}", float(v), created_ms(job), 0)
               for k, v in (job.summary or {}).items() if isinstance(v, (int, float)) and math.isfinite(v)]
    return summary, tags


def _batches(metrics_out: list[Metric], params: list[Param], tags: list[RunTag]) -> Iterator[tuple[list, list, list]]:
    """Chunks within MLflow's limits per log_batch: at most 100 params, 100 tags and 1,000 entries in all."""
    while metrics_out or params or tags:
        batch_params, params = params[:MAX_PARAMS_TAGS_PER_BATCH], params[MAX_PARAMS_TAGS_PER_BATCH:]
        batch_tags, tags = tags[:MAX_PARAMS_TAGS_PER_BATCH], tags[MAX_PARAMS_TAGS_PER_BATCH:]
        room = MAX_METRICS_PER_BATCH - len(batch_params) - len(batch_tags)
        batch_metrics, metrics_out = metrics_out[:room], metrics_out[room:]
        yield batch_metrics, batch_params, batch_tags


def _ensure_run(client: MlflowClient, sessions: sessionmaker[Session], job: Job, token: str, settings: Settings) -> tuple[str, str]:
    """The job's run, created once with the job's start time (its params follow with its first
    points). Only when an earlier pass asked for it and may have died before storing its id is it
    looked up (by its job_key tag) first."""
    experiment = experiment_id(client, sessions, job.owner, job.experiment, settings)
    if job.mlflow_run_requested_at is not None:
        found = client.search_runs([experiment], f"tags.job_key = '{job_key(job)}'", max_results=1)
        if found:
            with sessions() as session:
                log_dataset_inputs(client, session, job, found[0].info.run_id)  # perhaps not logged before the crash
            return experiment, found[0].info.run_id
    with sessions.begin() as session:
        mirror_cursor.save(session, job.id, token, mlflow_run_requested_at=utcnow())
    tags = run_tags(job, settings)
    if job.sweep_id is not None:
        tags["mlflow.parentRunId"] = ensure_sweep_run(client, sessions, job.sweep_id, settings)
    started = job.started_at or job.created_at
    run = client.create_run(experiment, start_time=int(started.timestamp() * 1000), run_name=tags["mlflow.runName"], tags=tags)
    with sessions() as session:
        log_dataset_inputs(client, session, job, run.info.run_id)
    return experiment, run.info.run_id


def _finish_run(client: MlflowClient, session: Session, job: Job, log_model: bool) -> str | None:
    """Artifacts, the MLflow model of a job that succeeded, and the final status with the job's end
    time, once the job has ended (repeatable). The model's id, when it has one."""
    run_id = job.mlflow_run_id
    with tempfile.TemporaryDirectory(prefix=f"bplab-job{job.id}-") as tmp:
        folder = Path(tmp)
        write_artifacts(session, job, folder)
        client.log_artifacts(run_id, str(folder))
    model_id = None
    if log_model and job.status is JobStatus.succeeded and job.model is not None and finite(job.model):
        model_id = log_run_model(client, session, job, job.mlflow_experiment_id)
    ended = job.finished_at or utcnow()
    client.set_terminated(run_id, RunStatus.to_string(RUN_STATUS[job.status]), end_time=int(ended.timestamp() * 1000))
    return model_id
