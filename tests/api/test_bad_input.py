"""Bad input is refused before anything is queued, as problem+json naming the field (the app in-process)."""

from __future__ import annotations

import json

import pytest

from tests.support.problems import assert_problem
from tests.support.specs import SEED, moons

BAD_SPECS = [
    ("softmax hidden", {**SEED, "model": {**SEED["model"], "layers": [{"units": 2, "activation": "softmax"}, {"units": 1, "activation": "sigmoid"}]}},
     "model.layers[0].activation", "only allowed on the output layer"),
    ("zero lr", {**SEED, "optimizer": {"name": "sgd", "lr": 0}}, "optimizer.lr", "must be > 0"),
    ("unknown field", {**SEED, "learning_rate": 1}, "learning_rate", "unknown field"),
    ("batch too big", {**SEED, "batch_size": 7}, "batch_size", "larger than the 1 training samples"),
    ("weights shape", {**SEED, "model": {**SEED["model"], "weights": [[[0.5, -0.2], [0.3, 0.8]], [[0.6], [-0.4]]]}},
     "model.weights[1]", "expected 1×2"),
    ("bad name", {**SEED, "name": ""}, "name", "at least 1 character"),
    ("bad tags", {**SEED, "tags": ["a"]}, "tags", "valid dictionary"),
    ("bad tag value", {**SEED, "tags": {"a": 1}}, "tags.a", "valid string"),
    ("missing loss", {k: v for k, v in SEED.items() if k != "loss"}, "loss", "Field required"),
]


@pytest.mark.parametrize(("body", "field", "words"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_invalid_submission_is_422_naming_the_field(client, body, field, words):
    before = client.get("/api/v1/jobs", params={"limit": 1}).json()["jobs"]
    problem = assert_problem(client.post("/api/v1/jobs", json=body), 422, field, words)
    assert problem["errors"][0]["field"] == field
    assert client.get("/api/v1/jobs", params={"limit": 1}).json()["jobs"] == before  # nothing stored or queued


@pytest.mark.parametrize(("spec", "field", "limit"), [
    (moons(model={"layers": [{"units": 1000, "activation": "relu"}, {"units": 1000, "activation": "relu"},
                             {"units": 1, "activation": "sigmoid"}]}), "model.layers", "MAX_PARAMS"),
    (moons(epochs=300000), "epochs", "MAX_STEPS"),
    (moons(steps=3_000_000, epochs=None), "steps", "MAX_STEPS"),
    (moons(data={"builtin": "moons", "n_samples": 50000}), "data.n_samples", "MAX_SAMPLES"),
])
def test_limits_are_enforced_before_queueing_and_reported(client, spec, field, limit):
    spec = {k: v for k, v in spec.items() if v is not None}
    body = assert_problem(client.post("/api/v1/jobs", json=spec), 422, field, limit)
    assert body["limit"]["name"] == limit and body["limit"]["requested"] > body["limit"]["value"]


def test_request_over_the_size_limit_is_413(client):
    X = [[0.1] * 300] * 2000  # ~2.4 MB of JSON
    body = {**SEED, "model": {"layers": [{"units": 1, "activation": "sigmoid"}]}, "data": {"X": X, "y": [0] * 2000}}
    problem = assert_problem(client.post("/api/v1/jobs", content=json.dumps(body), headers={"Content-Type": "application/json"}), 413,
                             words="MAX_REQUEST_BYTES")
    assert problem["limit"]["value"] == 2_000_000


@pytest.mark.parametrize(("content", "words"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), ("", "not valid JSON")])
def test_malformed_body_is_400(client, content, words):
    assert_problem(client.post("/api/v1/jobs", content=content, headers={"Content-Type": "application/json"}), 400, words=words)


def test_unknown_job_and_route_and_method(client):
    assert_problem(client.get("/api/v1/jobs/999999"), 404, words="no job 999999")
    assert_problem(client.get("/api/v1/nothing"), 404)
    assert_problem(client.delete("/api/v1/jobs"), 405)
    assert_problem(client.get("/api/v1/jobs", params={"limit": "many"}), 400, "limit", "integer")
    job = client.post("/api/v1/jobs", json=SEED).json()
    assert_problem(client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"max_points": 2}), 400, "max_points", "greater than or equal to 4")


def test_predict_rejects_bad_rows(client, train):
    job = client.post("/api/v1/jobs", json=SEED).json()
    assert train(job["id"]) == "succeeded"
    assert_problem(client.post(f"/api/v1/jobs/{job['id']}/predict", json={"X": [[1, 2, 3]]}), 422, "X", "rows of 2 numbers")
    assert_problem(client.post(f"/api/v1/jobs/{job['id']}/predict", json={"rows": []}), 422, "X", "required")
    assert_problem(client.post(f"/api/v1/jobs/{job['id']}/predict", json={"X": "abc"}), 422, "X")


def test_openapi_document_and_docs_page(client):
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}/metrics", "/api/v1/jobs/{job_id}/events"} <= set(doc["paths"])
    spec_schema = doc["components"]["schemas"]["JobSpec"]
    assert spec_schema["additionalProperties"] is False and "model" in spec_schema["required"]
    assert "Layer" in doc["components"]["schemas"]
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
