"""Every run of a job that succeeded carries an MLflow model (the MLflow worker's code in this process,
a real `mlflow server`): MLflow's own pyfunc loads `runs:/<run>/model` and predicts /predict's
outputs, MLflow's registry takes it, a second pass logs nothing twice, a job that did not succeed
gets none, and the model goes with its run: kept while the job is archived, deleted with the job."""

from __future__ import annotations

import json
import os
import signal
from types import SimpleNamespace

import mlflow
import numpy as np
import onnx
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from engine.inference import predict
from services.migrate import upgrade
from services.store import housekeeping, jobs
from services.store.db import session_factory
from services.store.models import Job
from tests.support.databases import both_databases, settings_for
from tests.support.services import free_port
from tests.support.specs import moons
from worker.mlflow.mirror import mirror_pass
from worker.training import train


def _trained(sessions, settings, spec: dict, experiment: str) -> int:
    with sessions.begin() as s:
        job_id = jobs.create_job(s, spec, total_steps=1, n_params=1, experiment=experiment).id
    return train(job_id, settings), job_id


def _job(sessions, job_id: int) -> SimpleNamespace:
    with sessions() as s:
        job = s.get(Job, job_id)
        return SimpleNamespace(id=job.id, spec=job.spec, model=job.model, mlflow_run_id=job.mlflow_run_id,
                               mlflow_experiment_id=job.mlflow_experiment_id)


@both_databases
def test_a_succeeded_jobs_run_has_a_model_pyfunc_predicts_with(database_url, mlflow_server, monkeypatch):
    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url)
    experiment = f"models-{free_port()}"
    iris = {"model": {"layers": [{"units": 6, "activation": "elu"}, {"units": 3, "activation": "softmax"}]}, "loss": "cross_entropy",
            "data": {"builtin": "iris", "standardize": True}, "epochs": 5, "batch_size": 16, "seed": 2}
    status, job_id = _trained(sessions, settings, iris, experiment)
    diverged_status, diverged_id = _trained(sessions, settings, moons(optimizer={"name": "sgd", "lr": 1e12}, epochs=3), experiment)
    assert (status, diverged_status) == ("succeeded", "diverged")
    assert mirror_pass(settings) == {job_id: "synced", diverged_id: "synced"}
    assert mirror_pass(settings) == {}
    job = _job(sessions, job_id)
    client = MlflowClient(mlflow_server.url)
    [logged] = client.search_logged_models([job.mlflow_experiment_id])  # one model: none for the diverged job, none twice
    assert logged.source_run_id == job.mlflow_run_id and logged.name == "model" and logged.status == LoggedModelStatus.READY
    assert [o.model_id for o in client.get_run(job.mlflow_run_id).outputs.model_outputs] == [logged.model_id]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow.set_tracking_uri(mlflow_server.url)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{job.mlflow_run_id}/model")
    X = np.random.default_rng(1).normal(size=(20, 4)) * 2 + 3
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2", "x3"])
    got = pyfunc.predict(frame)  # a column per class, a row per input row
    want = np.array(predict(job.spec, job.model, X)["outputs"])
    assert list(got.columns) == ["probabilities_0", "probabilities_1", "probabilities_2"]
    assert np.abs(got.to_numpy() - want).max() <= 1e-12 * np.abs(want).max()
    assert [c.name for c in pyfunc.metadata.signature.inputs.inputs] == ["x0", "x1", "x2", "x3"]

    version = mlflow.register_model(f"runs:/{job.mlflow_run_id}/model", f"iris-{free_port()}")  # what the UI's Register model does
    assert version.run_id == job.mlflow_run_id and version.source == f"models:/{logged.model_id}"
    registered = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}").predict(frame)
    assert registered.equals(got)

    with sessions.begin() as s:
        housekeeping.set_archived(s, "local", experiment, True)
    mirror_pass(settings)
    assert client.get_run(job.mlflow_run_id).info.lifecycle_stage == "deleted"
    assert client.get_logged_model(logged.model_id).model_id == logged.model_id  # kept with the run, for a restore
    with sessions.begin() as s:
        housekeeping.delete_job(s, s.get(Job, job.id))
    mirror_pass(settings)
    with pytest.raises(MlflowException):
        client.get_logged_model(logged.model_id)


def test_each_member_of_a_stacked_sweep_carries_its_own_model_and_mlflow_serves_one(tmp_path, mlflow_server, monkeypatch):
    import subprocess

    import httpx
    from sqlalchemy import select

    from services.jobs.time_limits import TimeLimits
    from services.sweeps import advance
    from services.sweeps.request import parse_request
    from tests.support.services import BIN, wait_for

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    sessions = session_factory(url)
    settings = settings_for(url, mlflow_tracking_uri=mlflow_server.url)
    base = moons(epochs=3, dtype="float32", data={"builtin": "moons", "n_samples": 100, "standardize": True})
    request = parse_request({"base": base, "space": {"optimizer.lr": [0.01, 0.05, 0.2]}, "max_parallel": 10, "stack": True,
                             "experiment": f"stacked-{free_port()}"})
    with sessions.begin() as s:
        sweep_id = advance.create_sweep(s, request, TimeLimits(3600, 3900)).id
    advance.advance(sessions, sweep_id, settings)
    with sessions() as s:
        ids = list(s.scalars(select(Job.id).where(Job.sweep_id == sweep_id).order_by(Job.id)))
        assert len({s.get(Job, i).stack_key for i in ids}) == 1  # one shape: one stack
    assert train(ids[0], settings) == "succeeded"  # one claim trains all three

    def mirrored() -> bool:
        mirror_pass(settings)  # the sweep's parent run is made by one of the two threads; the others' jobs wait a pass
        with sessions() as s:
            return all(s.get(Job, i).mirror_state.value == "synced" for i in ids)

    wait_for(mirrored, 60, what="the sweep's runs")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow.set_tracking_uri(mlflow_server.url)
    X = np.random.default_rng(2).normal(size=(16, 2))
    frame = pd.DataFrame(X, columns=["x0", "x1"])
    outputs = {}
    for job_id in ids:
        job = _job(sessions, job_id)
        got = mlflow.pyfunc.load_model(f"runs:/{job.mlflow_run_id}/model").predict(frame)["probabilities"].to_numpy()
        want = np.array(predict(job.spec, job.model, X)["outputs"])[:, 0]
        assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max(), job_id  # float32
        outputs[job_id] = got
    assert len({o.tobytes() for o in outputs.values()}) == 3  # three learning rates, three models

    port = free_port()
    job = _job(sessions, ids[1])
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", f"runs:/{job.mlflow_run_id}/model", "--env-manager", "local",
                               "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True, env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})  # as in an activated venv
    try:
        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200
            except httpx.HTTPError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
                return False

        wait_for(answers, 120, interval=0.5, what="mlflow models serve")
        served = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=30,
                            json={"dataframe_split": {"columns": ["x0", "x1"], "data": X.tolist()}}).json()["predictions"]
        assert np.abs(np.array([row["probabilities"] for row in served]) - outputs[ids[1]]).max() <= 1e-7
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        log.close()


@both_databases
def test_a_dataset_jobs_run_names_its_dataset_once_per_context_and_rows_are_read_once(database_url, mlflow_server, tmp_path):
    from services.datasets import canonical
    from services.datasets.tables import read_table
    from services.datasets.use import CACHE, resolve
    from services.store import datasets

    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url)
    path = tmp_path / "flowers.csv"
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 2))
    path.write_text("petal,sepal,species\n" + "".join(f"{a},{b},{'iris' if a > b else 'rose'}\n" for a, b in X.tolist()))
    table = read_table(path, "csv")
    with sessions.begin() as s:
        row, _ = datasets.create(s, "local", name="flowers.csv", digest=canonical.digest(table), form="csv", rows=table.rows,
                                 columns=[canonical.profile(c) for c in table.columns], preview=canonical.preview(table),
                                 data=canonical.encode(table), upload_bytes=path.stat().st_size, max_owner_bytes=10**9)
        dataset_id = row.id
    loads = CACHE.loads
    ids = []
    for seed in range(3):
        document = {"model": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
                    "data": {"dataset": dataset_id, "target": "species", "validation_split": 0.2}, "epochs": 3, "seed": seed}
        with sessions.begin() as s:
            spec = resolve(s, "local", document)
            ids.append(jobs.create_job(s, spec, total_steps=1, n_params=1, experiment=f"flowers-{free_port()}").id)
    assert [train(i, settings) for i in ids] == ["succeeded"] * 3
    assert CACHE.loads - loads <= 1  # three jobs on one dataset: its rows parsed once in this process (none if cached before)
    assert mirror_pass(settings) == dict.fromkeys(ids, "synced")
    client = MlflowClient(mlflow_server.url)
    job = _job(sessions, ids[0])
    inputs = client.get_run(job.mlflow_run_id).inputs.dataset_inputs
    assert sorted(next(t.value for t in i.tags if t.key == "mlflow.data.context") for i in inputs) == ["training", "validation"]
    assert len(inputs) == 2 and len({i.dataset.digest for i in inputs}) == 2 and sum(json.loads(i.dataset.profile)["num_rows"]
                                                                                    for i in inputs) == 90
    dataset = inputs[0].dataset
    assert dataset.name == "flowers.csv" and f"bplab:datasets/{dataset_id}" in dataset.source
    assert [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]] == ["petal", "sepal", "species"]
    mlflow.set_tracking_uri(mlflow_server.url)
    model = mlflow.pyfunc.load_model(f"runs:/{job.mlflow_run_id}/model")
    assert [c.name for c in model.metadata.signature.inputs.inputs] == ["petal", "sepal"]
    props = {p.key: p.value for p in onnx.load(mlflow.artifacts.download_artifacts(f"runs:/{job.mlflow_run_id}/model") + "/model.onnx")
             .metadata_props}
    assert json.loads(props["bplab.classes"]) == ["iris", "rose"]
