"""A job's points as REST and as its MLflow run hold them, for comparing the two."""

from __future__ import annotations

import httpx
from mlflow import MlflowClient


def rest_series(client: httpx.Client, job_id: int, max_points: int | None = None) -> dict[str, list[tuple[int, float]]]:
    body = client.get(f"/api/v1/jobs/{job_id}/metrics", params={"max_points": max_points} if max_points else None).json()
    return {k: list(zip(v["steps"], v["values"], strict=True)) for k, v in body.items()}


def mlflow_series(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
