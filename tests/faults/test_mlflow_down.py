"""MLflow stopped in the middle of a job: the job trains on time; the back-fill completes the run,
every point once."""

from __future__ import annotations

from mlflow import MlflowClient

from tests.conftest import MAX_POINTS
from tests.support.runs import mlflow_series, rest_series
from tests.support.services import wait_for
from tests.support.specs import moons
from tests.support.waiting import wait_mirror, wait_status


def test_mlflow_outage_during_a_job(mlflow_api, mlflow_server):
    spec = moons(epochs=40, batch_size=1, record={"every": 4, "gradients": "summary"})  # 3,200 steps, a few seconds
    baseline = mlflow_api.post("/api/v1/jobs", json=spec).json()
    baseline = wait_status(mlflow_api, baseline["id"], {"succeeded"}, timeout=120)
    wait_mirror(mlflow_api, baseline["id"])

    job = mlflow_api.post("/api/v1/jobs", json=spec).json()
    wait_for(lambda: mlflow_api.get(f"/api/v1/jobs/{job['id']}").json()["mlflow"]["points"] > 0, 60, what="first mirrored points")
    mlflow_server.stop()
    try:
        done = wait_status(mlflow_api, job["id"], {"succeeded", "failed"}, timeout=120)
        assert done["status"] == "succeeded"
        # on time: MLflow being down does not slow training
        assert done["summary"]["duration_seconds"] < 2 * baseline["summary"]["duration_seconds"] + 2
        down = mlflow_api.get(f"/api/v1/jobs/{job['id']}").json()["mlflow"]
        assert down["state"] == "pending" and "unreachable" in down["error"]
    finally:
        mlflow_server.start()
    synced = wait_mirror(mlflow_api, job["id"], timeout=90)["mlflow"]  # Celery beat's back-fill
    assert synced["error"] is None
    client = MlflowClient(mlflow_server.url)
    run = client.get_run(synced["run_id"])
    assert run.info.status == "FINISHED"
    stored = rest_series(mlflow_api, job["id"])
    step_stride = -(-len(stored["loss"]) // MAX_POINTS)  # one stride for every per-step key: 801 recorded steps -> 9
    for key, points in stored.items():
        stride = 1 if key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy") else step_stride
        expected = [p for i, p in enumerate(points) if i % stride == 0 or i == len(points) - 1]
        assert mlflow_series(client, synced["run_id"], key) == expected, key  # every point (thinned), none twice
