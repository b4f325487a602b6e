"""MLflow stopped: training does not notice. A burst of jobs trains as fast with the MLflow server
down as with it up, a job in progress when it stops finishes on time, and once it is back the MLflow
worker completes every run, each point once."""

from __future__ import annotations

import time

from mlflow import MlflowClient

from tests.support.databases import MAX_POINTS
from tests.support.runs import mlflow_series, rest_series
from tests.support.services import wait_for
from tests.support.specs import moons
from tests.support.waiting import wait_mirror, wait_status

BURST = 8


def burst(client, experiment: str) -> tuple[float, list[int]]:
    """Seconds from the first submission of BURST small jobs to the last one's end, and their ids."""
    started = time.monotonic()
    ids = [client.post("/api/v1/jobs", json={**moons(seed=i), "experiment": experiment}).json()["id"] for i in range(BURST)]
    for job_id in ids:
        assert wait_status(client, job_id, {"succeeded", "failed"}, timeout=120)["status"] == "succeeded"
    return time.monotonic() - started, ids


def assert_mirrored(client, mlflow_url: str, job_id: int) -> None:
    """The job's run is complete: finished, with the job's own times, every point (thinned) once."""
    job = wait_mirror(client, job_id, timeout=120)
    run = MlflowClient(mlflow_url).get_run(job["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and job["mlflow"]["error"] is None
    assert run.info.start_time == int(_ms(job["started_at"])) and run.info.end_time == int(_ms(job["finished_at"]))
    # thinned as /metrics downsamples (worker/mlflow/thinning.py), on buckets cut by the planned length: a key
    # recorded at every recorded step (the loss) is exactly /metrics?max_points=; one with steps left out (no
    # finite value) keeps, on the planned buckets, its first, last, min and max points, each once
    stored, expected = rest_series(client, job_id), rest_series(client, job_id, max_points=MAX_POINTS)
    for key, points in stored.items():
        mirrored = mlflow_series(MlflowClient(mlflow_url), run.info.run_id, key)
        if len(points) == len(stored["loss"]):
            assert mirrored == expected[key], key
        else:
            assert set(mirrored) <= set(points) and len(set(mirrored)) == len(mirrored) <= MAX_POINTS, key
            assert {points[0], points[-1], min(points, key=lambda p: p[1]), max(points, key=lambda p: p[1])} <= set(mirrored), key


def _ms(moment: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(moment).timestamp() * 1000


def test_a_burst_trains_as_fast_with_mlflow_down_and_every_run_completes_when_it_is_back(mlflow_api, mlflow_server):
    up_seconds, up_ids = burst(mlflow_api, "burst-up")
    mlflow_server.stop()
    try:
        down_seconds, down_ids = burst(mlflow_api, "burst-down")  # every one succeeds while MLflow is away
        waiting = [mlflow_api.get(f"/api/v1/jobs/{job_id}").json()["mlflow"] for job_id in down_ids]
        assert all(w["state"] == "pending" and w["run_id"] is None for w in waiting)  # trained without waiting for it
    finally:
        mlflow_server.start()
    print(f"{BURST} jobs: {up_seconds:.2f} s with MLflow up, {down_seconds:.2f} s with it down")  # speed: bench/tracking.py
    for job_id in up_ids + down_ids:
        assert_mirrored(mlflow_api, mlflow_server.url, job_id)


def test_mlflow_stopped_in_the_middle_of_a_job(mlflow_api, mlflow_server):
    spec = moons(epochs=40, batch_size=1, record={"every": 4, "gradients": "summary"})  # 3,200 steps, a few seconds
    baseline = wait_status(mlflow_api, mlflow_api.post("/api/v1/jobs", json=spec).json()["id"], {"succeeded"}, timeout=120)
    job = mlflow_api.post("/api/v1/jobs", json=spec).json()
    wait_for(lambda: mlflow_api.get(f"/api/v1/jobs/{job['id']}").json()["mlflow"]["points"] > 0, 60, what="first mirrored points")
    mlflow_server.stop()
    try:
        done = wait_status(mlflow_api, job["id"], {"succeeded", "failed"}, timeout=120)
        assert done["status"] == "succeeded"
        assert done["summary"]["duration_seconds"] < 2 * baseline["summary"]["duration_seconds"] + 2  # on time
        wait_for(lambda: "unreachable" in (mlflow_api.get(f"/api/v1/jobs/{job['id']}").json()["mlflow"]["error"] or ""), 30,
                 what="the mirror to notice")
        assert mlflow_api.get(f"/api/v1/jobs/{job['id']}").json()["mlflow"]["state"] == "pending"
    finally:
        mlflow_server.start()
    assert_mirrored(mlflow_api, mlflow_server.url, job["id"])
