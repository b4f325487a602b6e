"""Jobs and sweeps as the API shows them: store rows into the response models of `schemas`."""

from __future__ import annotations

from flask import current_app, url_for

from services.mlflow.registry import model_version_url
from services.mlflow.run_params import spec_params
from services.store.models import Job as JobRow
from services.store.models import ModelVersion as ModelVersionRow
from services.store.models import Sweep as SweepRow
from services.sweeps.leaderboard import leaderboard

from .schemas.jobs import ForkedFrom, Job, JobLinks, JobTimeLimits, MlflowMirror, ModelVersion, Progress
from .schemas.sweeps import Sweep, SweepLinks, SweepObjective, SweepProgress, SweepSummary


def mlflow_run_url(job: JobRow) -> str | None:
    """A link to the run in the MLflow UI, opening the classic runs view (not the GenAI one)."""
    base = current_app.config["SETTINGS"].mlflow_ui_url
    if not (base and job.mlflow_experiment_id and job.mlflow_run_id):
        return None
    return f"{base.rstrip('/')}/#/experiments/{job.mlflow_experiment_id}/runs/{job.mlflow_run_id}?workflowType=machine_learning"


def model_version(row: ModelVersionRow) -> ModelVersion:
    settings = current_app.config["SETTINGS"]
    return ModelVersion(name=row.name, version=row.version, created_at=row.created_at,
                        url=model_version_url(settings, row.name, row.version) if settings.mlflow_ui_url else None)


def job_links(job_id: int) -> JobLinks:
    endpoints = {"self_": "jobs.get_job", "spec": "jobs.get_job_spec", "metrics": "metrics.get_metrics",
                 "metric_keys": "metrics.get_metric_keys", "events": "events.job_events", "model": "trained_model.get_model",
                 "predict": "trained_model.predict", "register_": "trained_model.register", "cancel": "jobs.cancel_job", "clone": "jobs.clone_job",
                 "gradients": "recorded_steps.get_gradients",
                 "trace": "recorded_steps.get_trace"}
    return JobLinks(**{name: url_for(endpoint, job_id=job_id) for name, endpoint in endpoints.items()})


def job_model(job: JobRow, with_spec: bool = False, with_params: bool = False) -> Job:
    fraction = job.step / job.total_steps if job.total_steps else 0.0
    return Job(
        id=job.id, name=job.name, experiment=job.experiment, tags={t.key: t.value for t in job.tags}, sweep_id=job.sweep_id,
        sweep_params=job.sweep_params, status=job.status, attempt=job.attempt, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at,
        progress=Progress(step=job.step, total_steps=job.total_steps, fraction=round(fraction, 6), loss=job.last_loss),
        n_params=job.n_params, time_limits=JobTimeLimits(soft_seconds=job.soft_time_limit, hard_seconds=job.hard_time_limit),
        summary=job.summary, error=job.error, cancel_requested=job.cancel_requested, archived=job.archived,
        mlflow=MlflowMirror(experiment_id=job.mlflow_experiment_id, run_id=job.mlflow_run_id, run_url=mlflow_run_url(job),
                            state=job.mirror_state, error=job.mirror_error, points=job.mirror_points,
                            points_due=max(job.mirror_points_due, job.mirror_points), run_finished_at=job.mlflow_run_finished_at),
        registered=[model_version(v) for v in job.model_versions],
        forked_from=None if job.forked_from_job is None else ForkedFrom(job=job.forked_from_job, step=job.forked_from_step),
        diagnoses=list(dict.fromkeys(d.kind for d in job.diagnoses)),
        links=job_links(job.id), spec=job.spec if with_spec else None, params=spec_params(job.spec) if with_params else None,
    )


def _sweep_fields(sweep: SweepRow, sweep_jobs: list[JobRow]) -> dict:
    by_state: dict[str, int] = {}
    for job in sweep_jobs:
        by_state[job.status.value] = by_state.get(job.status.value, 0) + 1
    return dict(
        id=sweep.id, name=sweep.name, experiment=sweep.experiment, strategy=sweep.strategy, status=sweep.status,
        created_at=sweep.created_at, objective=SweepObjective(metric=sweep.objective_metric, goal=sweep.objective_goal),
        progress=SweepProgress(trials=sweep.n_trials, trials_started=sweep.trials_created, seeds=sweep.seeds,
                               planned_jobs=sweep.n_trials * sweep.seeds, jobs=len(sweep_jobs), by_state=by_state),
        max_parallel=sweep.max_parallel, importance=sweep.importance, refused_points=sweep.refused_points or [],
        links=SweepLinks(self_=url_for("sweeps.get_sweep", sweep_id=sweep.id), jobs=url_for("jobs.list_jobs", sweep_id=sweep.id),
                         importance=url_for("sweeps.get_importance", sweep_id=sweep.id),
                         cancel=url_for("sweeps.cancel_sweep", sweep_id=sweep.id)),
    )


def sweep_summary(sweep: SweepRow, sweep_jobs: list[JobRow]) -> SweepSummary:
    return SweepSummary(**_sweep_fields(sweep, sweep_jobs))


def sweep_model(sweep: SweepRow, sweep_jobs: list[JobRow]) -> Sweep:
    return Sweep(**_sweep_fields(sweep, sweep_jobs), leaderboard=leaderboard(sweep, sweep_jobs),
                 jobs=[job_model(j) for j in sweep_jobs])
