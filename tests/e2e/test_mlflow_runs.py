"""Every job becomes an MLflow run holding exactly what the REST API returns."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tests.support.databases import MAX_POINTS
from tests.support.runs import mlflow_series, rest_series
from tests.support.specs import SEED, moons
from tests.support.waiting import wait_mirror, wait_status, wait_sweep


def test_job_run_holds_the_same_points_params_and_tags(mlflow_api, mlflow_server):
    experiment = f"mirror-{uuid.uuid4().hex[:6]}"
    body = {**moons(), "name": "moons-adam", "experiment": experiment, "tags": {"team": "lab"}}
    job = mlflow_api.post("/api/v1/jobs", json=body).json()
    wait_status(mlflow_api, job["id"], {"succeeded"})
    job = wait_mirror(mlflow_api, job["id"])
    info = job["mlflow"]
    assert info["run_url"] == f"http://mlflow.example:5000/#/experiments/{info['experiment_id']}/runs/{info['run_id']}?workflowType=machine_learning"
    client = MlflowClient(mlflow_server.url)
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "moons-adam"
    assert client.get_experiment(info["experiment_id"]).name == experiment
    params = run.data.params
    assert params["lr"] == "0.02" and params["batch_size"] == "10" and params["optimizer"] == "adam" and params["epochs"] == "5"
    assert params["loss"] == "bce" and params["architecture"] == "2-8(relu)-1(sigmoid)" and params["hidden_layers"] == "1"
    assert params["init"] == "he_normal" and params["seed"] == "1" and params["dtype"] == "float64"
    assert params["dataset"] == "moons" and params["n_params"] == str(job["n_params"]) == "33"
    assert params["validation_split"] == "0.2" and params["layers.0.units"] == "8" and params["betas"] == "[0.9, 0.999]"
    assert params["log10_lr"] == f"{math.log10(0.02):.6g}"
    assert not [name for name in params if name.startswith(("optimizer.", "model.", "data."))]  # one name per field
    assert run.data.tags["job_name"] == "moons-adam"
    tags = run.data.tags
    assert tags["job_id"] == str(job["id"]) and tags["status"] == "succeeded" and tags["team"] == "lab"
    assert tags["job_url"] == f"http://bplab.example:8000/jobs/{job['id']}"  # the job's page

    series = rest_series(mlflow_api, job["id"])
    assert "grad_norm/dense_1.weight" in series and "val_loss" in series
    for key, points in series.items():
        assert mlflow_series(client, info["run_id"], key) == points, key
    assert run.data.metrics["summary/final_loss"] == job["summary"]["final_loss"]

    artifacts = {a.path for a in client.list_artifacts(info["run_id"])} | {
        a.path for a in client.list_artifacts(info["run_id"], "plots")}
    plots = {"plots/loss.svg", "plots/gradient_norms.svg", "plots/dead_units.svg", "plots/decision_boundary.svg"}
    assert {"spec.json", "model.npz", "predict_example.json", *plots} <= artifacts
    for plot in plots:  # real charts: SVG with a line (or the map's cells) in them
        svg = Path(client.download_artifacts(info["run_id"], plot)).read_text()
        assert svg.startswith("<svg") and ("<polyline" in svg or "<rect" in svg), plot

    found = client.search_runs([info["experiment_id"]], "params.lr = '0.02'")
    assert [r.info.run_id for r in found] == [info["run_id"]]


def test_full_gradients_and_traces_become_artifacts(mlflow_api, mlflow_server):
    job = mlflow_api.post("/api/v1/jobs", json={**SEED, "experiment": f"seed-{uuid.uuid4().hex[:6]}"}).json()
    wait_status(mlflow_api, job["id"], {"succeeded"})
    run_id = wait_mirror(mlflow_api, job["id"])["mlflow"]["run_id"]
    client = MlflowClient(mlflow_server.url)
    assert [a.path for a in client.list_artifacts(run_id, "gradients")] == ["gradients/step_0.npz"]
    assert [a.path for a in client.list_artifacts(run_id, "trace")] == ["trace/step_0.json"]
    assert client.get_run(run_id).data.params["dataset"] == "inline(1x2)"
    assert client.get_run(run_id).data.params["init"] == "explicit"


def test_a_sweep_reads_back_from_search_runs_ready_to_compare(mlflow_api, mlflow_server):
    """The README's lr x batch sweep as a user compares it: run names say what varies, one column per
    param, log10_lr spreads the rates, and every run has the inputs of a parallel-coordinates plot."""
    experiment = f"compare-{uuid.uuid4().hex[:6]}"
    body = {"name": "lr-x-batch", "experiment": experiment, "base": moons(epochs=2), "strategy": "grid",
            "space": {"optimizer.lr": [0.001, 0.1], "batch_size": [1, "full"]}, "seeds": 2, "max_parallel": 8}
    sweep = mlflow_api.post("/api/v1/sweeps", json=body).json()
    done = wait_sweep(mlflow_api, sweep["id"])
    for row in done["leaderboard"]:
        for job_id in row["jobs"]:
            wait_mirror(mlflow_api, job_id)
    mlflow.set_tracking_uri(mlflow_server.url)
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string=f"tags.sweep_id = '{sweep['id']}'")
    runs = runs[runs["tags.job_id"].notna()]  # the sweep's parent run aside
    assert len(runs) == 8
    expected = {f"lr={lr:g} batch={batch} seed={seed}" for lr in (0.001, 0.1) for batch in (1, "full") for seed in (1, 2)}
    assert set(runs["tags.mlflow.runName"]) == expected
    assert {float(v) for v in runs["params.log10_lr"]} == {-3.0, -1.0}
    assert set(runs["params.batch_size"]) == {"1", "full"} and "params.optimizer.lr" not in runs.columns
    for column in ("params.lr", "params.log10_lr", "params.batch_size", "params.seed", "metrics.summary/model_val_loss",
                   "metrics.val_loss"):
        assert runs[column].notna().all(), column
    names = [c for c in runs.columns if c.startswith("params.")]
    assert len(names) == len(set(names))


def test_jobs_without_an_experiment_go_to_mlflows_default(mlflow_api, mlflow_server):
    job = mlflow_api.post("/api/v1/jobs", json=moons(epochs=1)).json()
    assert job["experiment"] == "default"
    wait_status(mlflow_api, job["id"], {"succeeded"})
    info = wait_mirror(mlflow_api, job["id"])["mlflow"]
    client = MlflowClient(mlflow_server.url)
    assert info["experiment_id"] == "0" and client.get_experiment("0").name == "Default"
    assert client.get_experiment_by_name("default") is None
    assert client.get_run(info["run_id"]).info.run_name == "lr=0.02 batch=10 seed=1"


def test_a_sweep_of_jobs_is_one_row_per_job_in_search_runs(mlflow_api, mlflow_server):
    experiment = f"sweep-{uuid.uuid4().hex[:6]}"
    lrs = [0.001, 0.01, 0.1, 1.0]
    ids = [mlflow_api.post("/api/v1/jobs", json={**moons(epochs=2, optimizer={"name": "sgd", "lr": lr}), "experiment": experiment}).json()["id"]
           for lr in lrs]
    for job_id in ids:
        wait_status(mlflow_api, job_id, {"succeeded"})
        wait_mirror(mlflow_api, job_id)
    mlflow.set_tracking_uri(mlflow_server.url)
    runs = mlflow.search_runs(experiment_names=[experiment])
    assert len(runs) == 4
    assert sorted(float(v) for v in runs["params.lr"]) == lrs
    assert set(runs["tags.job_id"]) == {str(i) for i in ids}
    assert runs["metrics.loss"].notna().all() and (runs["params.architecture"] == "2-8(relu)-1(sigmoid)").all()


@pytest.mark.parametrize(("spec", "job_status", "run_status"), [
    ({"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]}, "loss": "mse",
      "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 1e6}, "steps": 60, "seed": 1}, "diverged", "FAILED"),
])
def test_run_status_mirrors_the_job(mlflow_api, mlflow_server, spec, job_status, run_status):
    job = mlflow_api.post("/api/v1/jobs", json=spec).json()
    wait_status(mlflow_api, job["id"], {job_status})
    run_id = wait_mirror(mlflow_api, job["id"])["mlflow"]["run_id"]
    run = MlflowClient(mlflow_server.url).get_run(run_id)
    assert run.info.status == run_status and run.data.tags["status"] == job_status


def test_cancelled_job_run_is_killed(mlflow_api, mlflow_server):
    job = mlflow_api.post("/api/v1/jobs", json=moons(epochs=10000, batch_size=1, record={"every": 10})).json()
    wait_status(mlflow_api, job["id"], {"running"})
    mlflow_api.post(f"/api/v1/jobs/{job['id']}/cancel")
    wait_status(mlflow_api, job["id"], {"cancelled"})
    run_id = wait_mirror(mlflow_api, job["id"])["mlflow"]["run_id"]
    assert MlflowClient(mlflow_server.url).get_run(run_id).info.status == "KILLED"


def test_long_series_are_thinned_in_mlflow_as_the_rest_metrics_downsample_but_whole_in_the_store(mlflow_api, mlflow_server):
    spec = moons(epochs=30, record={"every": 1}, data={"builtin": "moons", "n_samples": 100})
    job = mlflow_api.post("/api/v1/jobs", json=spec).json()  # 300 steps, past MAX_POINTS=100
    wait_status(mlflow_api, job["id"], {"succeeded"})
    run_id = wait_mirror(mlflow_api, job["id"])["mlflow"]["run_id"]
    stored = rest_series(mlflow_api, job["id"])
    assert len(stored["loss"]) == 300
    client = MlflowClient(mlflow_server.url)
    downsampled = rest_series(mlflow_api, job["id"], max_points=MAX_POINTS)
    for key in ("loss", "grad_norm/dense_1.weight"):
        mirrored = mlflow_series(client, run_id, key)
        assert mirrored == downsampled[key] and len(mirrored) <= MAX_POINTS  # the same buckets, first/min/max/last each
        assert mirrored[-1] == stored[key][-1] and mirrored[0] == stored[key][0]
        assert min(v for _, v in mirrored) == min(v for _, v in stored[key]) and max(v for _, v in mirrored) == max(v for _, v in stored[key])
    tags = client.get_run(run_id).data.tags
    assert "buckets of 12 points" in tags["bplab.thinned"]  # 300 points in 25 buckets
    assert tags["bplab.full_series"] == f"http://bplab.example:8000/api/v1/jobs/{job['id']}/metrics"


def test_a_sweep_is_a_parent_run_with_its_jobs_nested(mlflow_api, mlflow_server):
    experiment = f"nested-{uuid.uuid4().hex[:6]}"
    body = {"name": "nested", "experiment": experiment, "base": moons(epochs=2), "strategy": "grid",
            "space": {"optimizer.lr": [0.01, 0.1, 1.0]}, "objective": {"metric": "val_loss", "goal": "minimize"}, "max_parallel": 3}
    sweep = mlflow_api.post("/api/v1/sweeps", json=body).json()
    done = wait_sweep(mlflow_api, sweep["id"])
    client = MlflowClient(mlflow_server.url)
    run_ids = [wait_mirror(mlflow_api, row["jobs"][0])["mlflow"]["run_id"] for row in done["leaderboard"]]
    parents = {client.get_run(r).data.tags["mlflow.parentRunId"] for r in run_ids}
    assert len(parents) == 1
    parent_id = parents.pop()
    from tests.support.services import wait_for

    wait_for(lambda: client.get_run(parent_id).info.status == "FINISHED", 30, what="the sweep's parent run to finish")
    parent = client.get_run(parent_id)
    assert parent.data.tags["sweep_id"] == str(sweep["id"]) and parent.data.params["strategy"] == "grid"
    importance = mlflow_api.get(f"/api/v1/sweeps/{sweep['id']}/importance").json()["importance"]
    assert parent.data.metrics["importance/optimizer.lr"] == importance["optimizer.lr"]
    assert parent.info.status == "FINISHED"


def test_the_job_and_readyz_say_how_far_behind_mlflow_is(mlflow_api):
    job = mlflow_api.post("/api/v1/jobs", json=moons()).json()
    wait_status(mlflow_api, job["id"], {"succeeded"})
    done = wait_mirror(mlflow_api, job["id"])["mlflow"]
    stored = rest_series(mlflow_api, job["id"])
    assert done["points"] == done["points_due"] == sum(len(s) for s in stored.values())
    assert done["run_finished_at"] is not None and done["run_finished_at"] >= wait_status(mlflow_api, job["id"], {"succeeded"})["finished_at"]
    backlog = mlflow_api.get("/readyz").json()["mlflow_backlog"]
    assert set(backlog) == {"runs", "series", "points"} and all(isinstance(v, int) and v >= 0 for v in backlog.values())


def test_a_jobs_diagnoses_are_run_tags_mlflow_can_filter_by(mlflow_api, mlflow_server):
    from tests.support.specs import dead_relu

    experiment = f"diagnosed-{uuid.uuid4().hex[:6]}"
    steep = mlflow_api.post("/api/v1/jobs", json={**dead_relu(1.0), "experiment": experiment}).json()
    gentle = mlflow_api.post("/api/v1/jobs", json={**dead_relu(0.5), "experiment": experiment}).json()
    for job in (steep, gentle):
        wait_status(mlflow_api, job["id"], {"succeeded"})
    steep, gentle = wait_mirror(mlflow_api, steep["id"]), wait_mirror(mlflow_api, gentle["id"])
    client = MlflowClient(mlflow_server.url)
    dead = mlflow_api.get(f"/api/v1/jobs/{steep['id']}/diagnoses").json()["diagnoses"][0]
    tag = client.get_run(steep["mlflow"]["run_id"]).data.tags["diagnosis.dead_units"]
    assert tag == f"step {dead['step']}: {len(dead['evidence']['units'])}/16 units of dense_1"
    found = client.search_runs([steep["mlflow"]["experiment_id"]], "tags.`diagnosis.dead_units` LIKE 'step%'")
    assert [r.info.run_id for r in found] == [steep["mlflow"]["run_id"]]  # MLflow's own filter tells them apart
