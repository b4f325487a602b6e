"""Waiting for a job, a sweep or a mirror to get somewhere, through the REST API."""

from __future__ import annotations

import time

import httpx


def wait_status(client: httpx.Client, job_id: int, statuses: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")


def wait_mirror(client: httpx.Client, job_id: int, state: str = "synced", timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["mlflow"]["state"] == state:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} mirror is {job['mlflow']} after {timeout}s")


def wait_sweep(client: httpx.Client, sweep_id: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sweep = client.get(f"/api/v1/sweeps/{sweep_id}").json()
        if sweep["status"] != "running":
            return sweep
        time.sleep(0.3)
    raise TimeoutError(f"sweep {sweep_id} still running: {sweep['progress']}")


def wait_computed(client: httpx.Client, path: str, timeout: float = 60, **params: object) -> httpx.Response:
    """What a worker computes on request (a landscape, a replayed step), once it has (the API answers 202 until then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(path, params=params)
        if answer.status_code != 202:
            return answer
        time.sleep(float(answer.headers.get("Retry-After", "1")) / 4)
    raise TimeoutError(f"{path} still computing after {timeout}s")


def wait_landscape(client: httpx.Client, job_id: int, timeout: float = 60, **params: object) -> httpx.Response:
    """A job's landscape once a worker has computed it."""
    return wait_computed(client, f"/api/v1/jobs/{job_id}/landscape", timeout, **params)
