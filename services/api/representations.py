"""Jobs and sweeps as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, url_for

from services.store.models import Job, Sweep
from services.sweeps.leaderboard import leaderboard


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def mlflow_run_url(job: Job) -> str | None:
    """A link to the run in the MLflow UI, opening the classic runs view (not the GenAI one)."""
    base = current_app.config["SETTINGS"].mlflow_ui_url
    if not (base and job.mlflow_experiment_id and job.mlflow_run_id):
        return None
    return f"{base.rstrip('/')}/#/experiments/{job.mlflow_experiment_id}/runs/{job.mlflow_run_id}?workflowType=machine_learning"


def job_links(job_id: int) -> dict[str, str]:
    links = {"self": url_for("jobs.get_job", job_id=job_id)}
    for name, endpoint in (("metrics", "metrics.get_metrics"), ("metric_keys", "metrics.get_metric_keys"),
                           ("events", "events.job_events"), ("model", "trained_model.get_model"),
                           ("predict", "trained_model.predict"), ("cancel", "jobs.cancel_job"),
                           ("gradients", "recorded_steps.get_gradients"), ("trace", "recorded_steps.get_trace")):
        links[name] = url_for(endpoint, job_id=job_id)
    return links


def job_json(job: Job, with_spec: bool = True) -> dict[str, Any]:
    fraction = job.step / job.total_steps if job.total_steps else 0.0
    body: dict[str, Any] = {
        "id": job.id,
        "name": job.name,
        "experiment": job.experiment,
        "tags": {t.key: t.value for t in job.tags},
        "sweep_id": job.sweep_id,
        "status": job.status.value,
        "attempt": job.attempt,
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "progress": {"step": job.step, "total_steps": job.total_steps, "fraction": round(fraction, 6), "loss": job.last_loss},
        "n_params": job.n_params,
        "time_limits": {"soft_seconds": job.soft_time_limit, "hard_seconds": job.hard_time_limit},
        "summary": job.summary,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "mlflow": {
            "experiment_id": job.mlflow_experiment_id, "run_id": job.mlflow_run_id,
            "run_url": mlflow_run_url(job), "state": job.mirror_state.value, "error": job.mirror_error, "points": job.mirror_points,
        },
        "links": job_links(job.id),
    }
    if with_spec:
        body["spec"] = job.spec
    return body


def sweep_json(sweep: Sweep, sweep_jobs: list[Job], with_jobs: bool = True) -> dict[str, Any]:
    by_state: dict[str, int] = {}
    for job in sweep_jobs:
        by_state[job.status.value] = by_state.get(job.status.value, 0) + 1
    body = {
        "id": sweep.id, "name": sweep.name, "experiment": sweep.experiment, "strategy": sweep.strategy, "status": sweep.status.value,
        "created_at": _time(sweep.created_at), "objective": {"metric": sweep.objective_metric, "goal": sweep.objective_goal},
        "progress": {"trials": sweep.n_trials, "trials_started": sweep.trials_created, "seeds": sweep.seeds,
                     "planned_jobs": sweep.n_trials * sweep.seeds, "jobs": len(sweep_jobs), "by_state": by_state},
        "max_parallel": sweep.max_parallel, "importance": sweep.importance,
        "leaderboard": leaderboard(sweep, sweep_jobs),
        "links": {"self": url_for("sweeps.get_sweep", sweep_id=sweep.id), "jobs": url_for("jobs.list_jobs", sweep_id=sweep.id),
                  "importance": url_for("sweeps.get_importance", sweep_id=sweep.id),
                  "cancel": url_for("sweeps.cancel_sweep", sweep_id=sweep.id)},
    }
    if with_jobs:
        body["jobs"] = [job_json(j, with_spec=False) for j in sweep_jobs]
    return body
