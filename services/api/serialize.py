"""Jobs as the API shows them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import current_app, url_for

from services.models import Job


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def mlflow_run_url(job: Job) -> str | None:
    """A link to the run in the MLflow UI, opening the classic runs view (not the GenAI one)."""
    base = current_app.config["SETTINGS"].mlflow_ui_url
    if not (base and job.mlflow_experiment_id and job.mlflow_run_id):
        return None
    return f"{base.rstrip('/')}/#/experiments/{job.mlflow_experiment_id}/runs/{job.mlflow_run_id}?workflowType=machine_learning"


def job_links(job_id: int) -> dict[str, str]:
    links = {"self": url_for("jobs.get_job", job_id=job_id)}
    for name, endpoint in (("metrics", "jobs.get_metrics"), ("metric_keys", "jobs.get_metric_keys"), ("events", "jobs.events"),
                           ("model", "jobs.get_model"), ("predict", "jobs.predict"), ("cancel", "jobs.cancel_job"),
                           ("gradients", "jobs.get_gradients"), ("trace", "jobs.get_trace")):
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
        "status": job.status,
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
            "run_url": mlflow_run_url(job), "state": job.mirror_state, "error": job.mirror_error, "points": job.mirror_points,
        },
        "links": job_links(job.id),
    }
    if with_spec:
        body["spec"] = job.spec
    return body
