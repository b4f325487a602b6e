"""A job's MLflow run itself, before any series: created with its params and tags when the job
starts, and, the moment the job has ended, given its summary, each key's last point, its status and
the job's own end time. Three MLflow calls for a job that ended before its run was made (create,
one log_batch, set_terminated), so a run is FINISHED seconds after its job, however long other
jobs' series take to follow (worker/mlflow/series.py)."""

from __future__ import annotations

import json
import math

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from sqlalchemy.orm import Session, sessionmaker

from services.mlflow.run_params import log_scale_params
from services.settings import Settings
from services.store import metrics, mirror_cursor
from services.store.columns import db_now, utcnow
from services.store.models import TERMINAL, Job, JobStatus, MirrorState, Sweep

from .batches import send
from .experiments import experiment_id
from .run_content import created_ms, diagnosis_tags, job_key, run_params, run_tags
from .run_inputs import log_dataset_inputs
from .sweep_runs import ensure_sweep_run
from .thinning import points_due, thinning_tags

RUN_STATUS = {JobStatus.succeeded: RunStatus.FINISHED, JobStatus.diverged: RunStatus.FAILED,
              JobStatus.failed: RunStatus.FAILED, JobStatus.cancelled: RunStatus.KILLED}
SYSTEM_TAGS = frozenset({"job_id", "job_key", "job_name", "job_url", "status", "error", "sweep_id"})


def bring_run_up(sessions: sessionmaker[Session], client: MlflowClient, job_id: int, token: str, settings: Settings) -> MirrorState:
    """Make the job's run exist (with its params), send changed metadata, and finish the run of an
    ended job. The state the job's mirror is left in (`pending` while its series are to follow)."""
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None:  # deleted since it was claimed
            return MirrorState.synced
        params: list[Param] = []
        if job.mlflow_run_id is None:
            experiment, run_id = _ensure_run(client, sessions, job, token, settings)
            with sessions.begin() as writer:
                stored = mirror_cursor.save(writer, job_id, token, mlflow_experiment_id=experiment, mlflow_run_id=run_id)
            if not stored and session.get(Job, job_id, populate_existing=True) is None:  # deleted while its run was made
                client.delete_run(run_id)
                return MirrorState.synced
            session.refresh(job)
            params = [Param(k, v) for k, v in run_params(job, _log_names(session, job)).items()]
        if job.mirror_meta_stale:
            send_metadata(client, sessions, job, token, settings)
        if job.mirror_state is MirrorState.synced:  # only its name, tags or archived flag changed
            return MirrorState.synced
        if job.status not in TERMINAL or job.mlflow_run_finished_at is not None:
            send(client, job.mlflow_run_id, [], params, [])
            return MirrorState.pending
        counts, cursor = metrics.count(session, job.id), job.mirror_cursor or {}
        unsent = [key for key, n in counts.items() if cursor.get(key, 0) < n]  # a running job's series may have sent some already
        last = metrics.last_points(session, job.id, None if len(unsent) == len(counts) else unsent) if unsent else {}
        summary, tags = _final_status(job, settings)
        due = job.mirror_points + points_due(job, {key: counts[key] - cursor.get(key, 0) for key in unsent}, settings)
    timestamp = created_ms(job)
    lasts = [Metric(key, value, timestamp, step) for key, (step, value) in sorted(last.items())]
    send(client, job.mlflow_run_id, summary + lasts, params, tags)
    ended = job.finished_at or utcnow()
    client.set_terminated(job.mlflow_run_id, RunStatus.to_string(RUN_STATUS[job.status]), end_time=int(ended.timestamp() * 1000))
    with sessions.begin() as writer:
        mirror_cursor.save(writer, job_id, token, mlflow_run_finished_at=db_now(writer), mirror_points=job.mirror_points + len(lasts),
                           mirror_points_due=max(due, job.mirror_points + len(lasts)))
    return MirrorState.pending


def _final_status(job: Job, settings: Settings) -> tuple[list[Metric], list[RunTag]]:
    """The summary figures and the tags an ended job's run gets with its final status."""
    tags = {"status": job.status.value}
    if job.error:
        tags["error"] = json.dumps(job.error)[:5000]
    series_url = f"{settings.public_url.rstrip('/')}/api/v1/jobs/{job.id}/metrics" if settings.public_url else None
    tags.update(thinning_tags(job, settings, series_url))
    tags.update(diagnosis_tags(job))  # a run made while its job trained has only those found by then
    summary = [Metric(f"summary/{k}", float(v), created_ms(job), 0)
               for k, v in (job.summary or {}).items() if isinstance(v, (int, float)) and math.isfinite(v)]
    return summary, [RunTag(k, v) for k, v in tags.items()]


def send_metadata(client: MlflowClient, sessions: sessionmaker[Session], job: Job, token: str, settings: Settings) -> None:
    """The job's name and tags as they are now (tags removed from the job are removed from the run),
    and the run deleted while the job is archived, restored when it is not (MLflow's soft delete)."""
    run = client.get_run(job.mlflow_run_id)
    if run.info.lifecycle_stage == "deleted":
        client.restore_run(job.mlflow_run_id)  # a deleted run takes no tags
    tags = run_tags(job, settings)
    for key in run.data.tags:
        if key not in tags and key not in SYSTEM_TAGS and not key.startswith(("mlflow.", "bplab.")):
            client.delete_tag(job.mlflow_run_id, key)
    if "job_name" in run.data.tags and not job.name:
        client.delete_tag(job.mlflow_run_id, "job_name")
    client.log_batch(job.mlflow_run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    if job.archived:
        client.delete_run(job.mlflow_run_id)
    with sessions.begin() as writer:
        mirror_cursor.save(writer, job.id, token, mirror_meta_stale=False)


def _log_names(session: Session, job: Job) -> set[str]:
    sweep = session.get(Sweep, job.sweep_id) if job.sweep_id is not None else None
    return log_scale_params(sweep.request if sweep is not None else None)


def _ensure_run(client: MlflowClient, sessions: sessionmaker[Session], job: Job, token: str, settings: Settings) -> tuple[str, str]:
    """The job's run, created once with the job's start time. Only when an earlier pass asked for it
    and may have died before storing its id is it looked up (by its job_key tag) first."""
    experiment = experiment_id(client, sessions, job.owner, job.experiment, settings)
    if job.mlflow_run_requested_at is not None:
        found = client.search_runs([experiment], f"tags.job_key = '{job_key(job)}'", max_results=1)
        if found:
            with sessions() as session:
                log_dataset_inputs(client, session, job, found[0].info.run_id)  # perhaps not logged before the crash
            return experiment, found[0].info.run_id
    with sessions.begin() as session:
        mirror_cursor.save(session, job.id, token, mlflow_run_requested_at=db_now(session))
    tags = run_tags(job, settings)
    if job.sweep_id is not None:
        tags["mlflow.parentRunId"] = ensure_sweep_run(client, sessions, job.sweep_id, settings)
    elif job.forked_from_job is not None:  # nested under its parent's run, where the earlier steps are
        with sessions() as session:
            parent = session.get(Job, job.forked_from_job)
            if parent is not None and parent.mlflow_run_id and parent.mlflow_experiment_id == experiment:
                tags.update({"mlflow.parentRunId": parent.mlflow_run_id, "forked_from_run": parent.mlflow_run_id})
    started = job.started_at or job.created_at
    run = client.create_run(experiment, start_time=int(started.timestamp() * 1000), run_name=tags["mlflow.runName"], tags=tags)
    with sessions() as session:
        log_dataset_inputs(client, session, job, run.info.run_id)
    return experiment, run.info.run_id
