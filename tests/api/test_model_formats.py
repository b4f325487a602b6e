"""`GET /jobs/{id}/model?format=...` over HTTP (the app in-process): each file as a user downloads it,
opened by the tool it is for, and the refusals (no model yet, a diverged job, an unknown format)."""

from __future__ import annotations

import io
import json

import numpy as np
import onnx
import onnxruntime
import pytest

from engine.export import spec_digest
from tests.support.problems import assert_problem
from tests.support.specs import moons


def test_onnx_download_runs_in_onnx_runtime_as_predict_answers(client, train):
    spec = moons(data={"builtin": "moons", "n_samples": 100, "standardize": True}, dtype="float32")
    job = client.post("/api/v1/jobs", json=spec).json()
    assert train(job["id"]) == "succeeded"
    response = client.get(f"/api/v1/jobs/{job['id']}/model", params={"format": "onnx"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/onnx"
    assert response.headers["content-disposition"] == f'attachment; filename="job-{job["id"]}.onnx"'
    proto = onnx.load_from_string(response.content)
    props = {p.key: p.value for p in proto.metadata_props}
    stored = client.get(f"/api/v1/jobs/{job['id']}", params={"include": "spec"}).json()["spec"]
    assert props["bplab.job_id"] == str(job["id"]) and props["bplab.spec_digest"] == spec_digest(stored)
    X = [[0.5, -0.2], [2.0, 1.0], [-40.0, 13.0]]
    outputs = onnxruntime.InferenceSession(response.content).run(["probabilities"], {"x": np.array(X, np.float32)})[0]
    expected = np.array(client.post(f"/api/v1/jobs/{job['id']}/predict", json={"X": X}).json()["outputs"])
    assert np.abs(outputs - expected).max() <= 1e-6 * np.abs(expected).max()


def test_safetensors_and_npz_downloads(client, train):
    from safetensors.numpy import load

    job = client.post("/api/v1/jobs", json=moons()).json()
    assert train(job["id"]) == "succeeded"
    model = client.get(f"/api/v1/jobs/{job['id']}/model").json()
    tensors = load(client.get(f"/api/v1/jobs/{job['id']}/model", params={"format": "safetensors"}).content)
    assert sorted(tensors) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert tensors["2.weight"].tolist() == model["weights"][1] and tensors["0.bias"].tolist() == model["biases"][0]
    npz = client.get(f"/api/v1/jobs/{job['id']}/model", params={"format": "npz"})
    assert npz.headers["content-disposition"].endswith('.npz"')
    arrays = np.load(io.BytesIO(npz.content), allow_pickle=False)
    assert arrays["weights_0"].tolist() == model["weights"][0] and json.loads(str(arrays["layers_json"])) == model["layers"]


@pytest.mark.parametrize("form", ["onnx", "safetensors", "npz"])
def test_a_file_of_a_diverged_or_unfinished_job_is_409(client, train, form):
    job = client.post("/api/v1/jobs", json=moons(optimizer={"name": "sgd", "lr": 1e12}, epochs=3)).json()
    assert_problem(client.get(f"/api/v1/jobs/{job['id']}/model", params={"format": form}), 409, kind="no-model")
    assert train(job["id"]) == "diverged"
    assert_problem(client.get(f"/api/v1/jobs/{job['id']}/model", params={"format": form}), 409, kind="unusable-model")


def test_an_unknown_format_is_named(client):
    job = client.post("/api/v1/jobs", json=moons()).json()
    assert_problem(client.get(f"/api/v1/jobs/{job['id']}/model", params={"format": "pickle"}), 400, kind="bad-query", field="format")


def test_register_without_mlflow_says_so(client, train):
    job = client.post("/api/v1/jobs", json=moons()).json()
    assert_problem(client.post(f"/api/v1/jobs/{job['id']}/register", json={"name": "best"}), 409, kind="no-model")
    assert train(job["id"]) == "succeeded"
    assert_problem(client.post(f"/api/v1/jobs/{job['id']}/register", json={"name": "best"}), 409, kind="mlflow-off")
    assert_problem(client.post(f"/api/v1/jobs/{job['id']}/register", json={"name": "a@b"}), 422, field="name")
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["registered"] == []
