"""The contract the OpenAPI document states, held by the running app (in-process): every field of a
job spec refuses a wrong type, a value out of range and (where required) its absence, naming the
field; strings are not numbers and numbers not booleans; unknown query parameters and out-of-range
pages are refused; answers carry only what they say (no spec echo, Retry-After only where waiting
helps); readiness reports what is not ready; every problem `type` has its explanation."""

from __future__ import annotations

import json

import pytest

from services.api.problems import PROBLEMS
from tests.support.problems import assert_problem
from tests.support.specs import SEED, moons

# (path in the spec, a value of the wrong type, a value of the right type out of range or not allowed)
FIELDS = [
    ("model.layers", "relu", []),
    ("model.layers[0].units", "8", 0),
    ("model.layers[0].activation", 1, "swish"),
    ("model.layers[0].alpha", "0.1", float("nan")),
    ("model.init", 3, "orthogonal"),
    ("model.dropout", "0.1", 1.0),
    ("model.weights", "w", [[["x"]]]),
    ("model.biases", 1, [["b"]]),
    ("loss", 1, "hinge"),
    ("data.X", "rows", [["a"]]),
    ("data.y", "labels", [None]),
    ("data.builtin", 1, "mnist"),
    ("data.n_samples", "100", 0),
    ("data.noise", "0.1", -1.0),
    ("data.validation_split", "0.2", 1.0),
    ("data.standardize", 1, "yes"),
    ("optimizer.name", 1, "lbfgs"),
    ("optimizer.lr", "0.1", 0.0),
    ("optimizer.weight_decay", "0", -0.1),
    ("optimizer.momentum", "0.9", -1.0),
    ("optimizer.dampening", "0", 2.0),
    ("optimizer.nesterov", 1, "true"),
    ("optimizer.alpha", "0.9", 1.0),
    ("optimizer.eps", "1e-8", 0.0),
    ("optimizer.centered", 0, "no"),
    ("optimizer.betas", 0.9, [0.9]),
    ("optimizer.amsgrad", 1, "true"),
    ("optimizer.clip_norm", "1", 0.0),
    ("optimizer.schedule.name", 1, "linear"),
    ("optimizer.schedule.step_size", "10", 0),
    ("optimizer.schedule.gamma", "0.1", 0.0),
    ("optimizer.schedule.t_max", 1.5, 0),
    ("optimizer.schedule.eta_min", "0", -1.0),
    ("batch_size", "10", 0),
    ("epochs", "5", 0),
    ("steps", "5", 0),
    ("shuffle", 1, "false"),
    ("seed", "1", -1),
    ("dtype", 64, "float16"),
    ("record.every", "1", 0),
    ("record.gradients", True, "some"),
    ("record.trace", "yes", [-1]),
    ("record.max_bytes", "1", -1),
    ("name", 7, ""),
    ("experiment", 7, "x" * 201),
    ("tags", ["a"], {"a\nb": "c"}),
    ("time_limits", "1", {"soft_seconds": 0}),
]
REQUIRED = ["model", "model.layers", "model.layers[0].units", "model.layers[0].activation", "loss", "data"]


def _parts(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in path.replace("]", "").split("."):
        name, *indices = piece.split("[")
        parts += [name, *map(int, indices)]
    return parts


def _with(path: str, value=None, *, remove: bool = False) -> dict:
    """A valid moons spec with the value at `path` replaced (or removed)."""
    spec = moons(optimizer={"name": "sgd", "lr": 0.1, "schedule": {"name": "constant"}})
    *parents, last = _parts(path)
    node = spec
    for part in parents:
        if isinstance(part, str) and part not in node:
            node[part] = {}
        node = node[part]
    if remove:
        del node[last]
    else:
        node[last] = value
    return spec


def _refused(client, spec: dict, field: str) -> dict:
    before = client.get("/api/v1/jobs", params={"limit": 1}).json()["jobs"]
    answer = client.post("/api/v1/jobs", content=json.dumps(spec, allow_nan=True), headers={"Content-Type": "application/json"})
    problem = assert_problem(answer, 422)
    fields = [e["field"] for e in problem["errors"]]
    assert problem["field"] == field or field in fields or any(f.startswith(field + ".") or f.startswith(field + "[") for f in fields), problem
    assert client.get("/api/v1/jobs", params={"limit": 1}).json()["jobs"] == before  # nothing stored or queued
    return problem


@pytest.mark.parametrize(("path", "wrong_type", "_bad"), FIELDS, ids=[f[0] for f in FIELDS])
def test_every_field_refuses_a_wrong_type(client, path, wrong_type, _bad):
    _refused(client, _with(path, wrong_type), path)


@pytest.mark.parametrize(("path", "_wrong_type", "bad"), FIELDS, ids=[f[0] for f in FIELDS])
def test_every_field_refuses_a_value_out_of_range(client, path, _wrong_type, bad):
    _refused(client, _with(path, bad), path)


@pytest.mark.parametrize("path", REQUIRED)
def test_a_missing_required_field_is_named(client, path):
    problem = _refused(client, _with(path, remove=True), path)
    assert "required" in problem["detail"].lower()


@pytest.mark.parametrize(("path", "text"), [("model.layers[0].units", "8"), ("optimizer.lr", "0.1"), ("seed", "3")])
def test_strings_are_not_numbers(client, path, text):
    """Coercion would store `"units": "8"` and echo it back: refused instead."""
    problem = _refused(client, _with(path, text), path)
    assert "valid" in problem["detail"]


def test_numbers_are_not_booleans_nor_floats_integers(client):
    _refused(client, _with("shuffle", 0), "shuffle")
    _refused(client, _with("epochs", 5.0), "epochs")


def test_a_valid_submission_answers_without_its_spec_and_gives_it_on_request(client):
    X = [[i / 100, (i % 7) / 7] for i in range(300)]
    spec = {**SEED, "data": {"X": X, "y": [i % 2 for i in range(300)]}, "batch_size": 10}
    answer = client.post("/api/v1/jobs", json=spec)
    assert answer.status_code == 202 and "Retry-After" not in answer.headers
    job = answer.json()
    assert "spec" not in job and len(answer.content) < 3000
    assert answer.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert client.get(f"/api/v1/jobs/{job['id']}").json().get("spec") is None
    with_spec = client.get(f"/api/v1/jobs/{job['id']}", params={"include": "spec"}).json()
    assert with_spec["spec"]["data"]["X"] == X
    stored = client.get(job["links"]["spec"]).json()
    assert stored["data"]["X"] == X and stored["optimizer"] == SEED["optimizer"]


@pytest.mark.parametrize(("params", "field"), [
    ({"name": "x"}, "name"),
    ({"limit": 1000}, "limit"),
    ({"limit": 0}, "limit"),
    ({"status": "finished"}, "status"),
    ({"cursor": "abc"}, "cursor"),
])
def test_the_job_list_refuses_unknown_and_out_of_range_parameters(client, params, field):
    assert_problem(client.get("/api/v1/jobs", params=params), 400, field, kind="bad-query")


def test_the_job_list_pages_with_a_cursor(client):
    ids = [client.post("/api/v1/jobs", json=SEED).json()["id"] for _ in range(3)]
    first = client.get("/api/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:2] and first["next_cursor"]
    second = client.get(first["next"]).json()
    assert second["jobs"][0]["id"] == ids[0]


def test_an_unknown_metric_key_is_404_listing_the_known_ones(client, train):
    job = client.post("/api/v1/jobs", json=SEED).json()
    assert train(job["id"]) == "succeeded"
    problem = assert_problem(client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss,val_los"}), 404,
                             "keys", "val_los", kind="unknown-metric")
    assert "loss" in problem["known_keys"]
    assert client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss"}).status_code == 200


def test_a_queued_job_accepts_keys_it_will_record(client):
    job = client.post("/api/v1/jobs", json=SEED).json()
    answer = client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss,grad_norm/dense_1.weight"})
    assert answer.status_code == 200, answer.text
    assert_problem(client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "grad_norm/dense_9.weight"}), 404, "keys")


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_bodies_are_400_not_500(client, depth):
    body = '{"model": ' + "[" * depth + "]" * depth + "}"
    assert_problem(client.post("/api/v1/jobs", content=body, headers={"Content-Type": "application/json"}), 400, words="nested")


def test_a_body_that_is_not_json_is_415(client):
    assert_problem(client.post("/api/v1/jobs", content=json.dumps(SEED), headers={"Content-Type": "text/plain"}), 415)


def test_predict_on_a_diverged_job_is_409(client, train):
    spec = moons(optimizer={"name": "sgd", "lr": 1e12}, epochs=3)
    job = client.post("/api/v1/jobs", json=spec).json()
    assert train(job["id"]) == "diverged"
    X = [[0.1, 0.2]]
    assert_problem(client.post(f"/api/v1/jobs/{job['id']}/predict", json={"X": X}), 409, kind="unusable-model")
    model = client.get(f"/api/v1/jobs/{job['id']}/model")  # its weights can still be inspected, and say how it ended
    assert model.status_code == 200 and model.json()["status"] == "diverged"


def test_readiness_reports_each_dependency(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ready"] and body["database"]["ok"] and body["migrations"]["ok"] and body["broker"]["ok"]
    assert "Retry-After" not in answer.headers


def test_readiness_is_503_while_the_broker_is_down(redis_server, tmp_path_factory):
    from tests.support.inprocess import http, make_app

    app, _ = make_app("sqlite", "redis://127.0.0.1:1/0", tmp_path_factory)
    with http(app) as c:
        answer = c.get("/readyz")
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        body = answer.json()
        assert not body["ready"] and not body["broker"]["ok"] and body["database"]["ok"]
        assert c.get("/healthz").status_code == 200  # alive, though not ready


def test_readiness_is_503_while_migrations_are_behind(tmp_path, redis_server):
    from services.api import create_app
    from services.migrate import upgrade
    from tests.support.databases import settings_for
    from tests.support.inprocess import http

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    upgrade(url, revision="0001")
    app = create_app({"SETTINGS": settings_for(url, redis_server.url), "TESTING": True})
    with http(app) as c:
        answer = c.get("/readyz")
        assert answer.status_code == 503, answer.text
        assert not answer.json()["migrations"]["ok"] and "newest is" in answer.json()["migrations"]["detail"]


def test_every_problem_kind_is_explained_where_its_type_points(client):
    page = client.get("/docs/problems")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for kind in PROBLEMS:
        assert f'id="{kind}"' in page.text
    problem = assert_problem(client.get("/api/v1/jobs/999999"), 404, kind="not-found")
    assert client.get(problem["type"].split("#")[0]).status_code == 200


def test_every_documented_operation_declares_its_answers(client):
    doc = client.get("/api/v1/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("operationId") and op.get("summary"), (method, path)
            for code, answer in op["responses"].items():
                if int(code) >= 400 and path != "/readyz":  # not ready is an answer, not a problem
                    assert list(answer["content"]) == ["application/problem+json"], (method, path, code)
    schemas = doc["components"]["schemas"]
    assert schemas["JobSpec"]["additionalProperties"] is False
    assert "spec" not in doc["paths"]["/api/v1/jobs"]["post"]["responses"]["202"]["content"]["application/json"]["schema"].get("required", [])


def test_unknown_route_and_method_are_problems(client):
    assert_problem(client.get("/api/v1/nothing"), 404)
    assert_problem(client.put("/api/v1/jobs"), 405)
    too_big = client.get("/api/v1/jobs/99999999999")
    assert too_big.status_code == 404



def test_jobs_are_found_by_text_in_their_name(client):
    names = ["lr-0.1 Moons", "lr-0.01 moons", "xor 100%_done", None]
    ids = [client.post("/api/v1/jobs", json={**SEED, **({"name": n} if n else {})}).json()["id"] for n in names]

    def found(text: str) -> list[int]:
        return [j["id"] for j in client.get("/api/v1/jobs", params={"q": text, "limit": 500}).json()["jobs"]]

    assert set(found("MOONS")) >= {ids[0], ids[1]} and ids[2] not in found("moons") and ids[3] not in found("moons")
    assert ids[2] in found("100%_") and ids[0] not in found("%")  # % and _ are text, not wildcards
    assert_problem(client.get("/api/v1/jobs", params={"q": ""}), 400, "q", kind="bad-query")


def test_every_example_the_openapi_document_holds_is_a_request_the_api_accepts(client, train):
    """Swagger UI offers each request body's example as the body to send: every one is accepted as it
    stands (the job ones against a job trained from the document's own POST /jobs example)."""
    doc = client.get("/api/v1/openapi.json").json()
    examples = {(method, path): media["example"] for path, operations in doc["paths"].items() for method, op in operations.items()
                for media in (op.get("requestBody") or {}).get("content", {}).values() if "example" in media}
    assert {("post", "/api/v1/jobs"), ("post", "/api/v1/sweeps"), ("patch", "/api/v1/jobs/{job_id}"),
            ("post", "/api/v1/jobs/{job_id}/clone"), ("post", "/api/v1/jobs/{job_id}/predict")} <= set(examples)
    job = client.post("/api/v1/jobs", json=examples["post", "/api/v1/jobs"])
    assert job.status_code == 202, job.text
    assert train(job.json()["id"]) == "succeeded"
    assert ("post", "/api/v1/webhooks") in examples
    base = {k: v for k, v in examples["post", "/api/v1/jobs"].items() if k not in ("name", "experiment", "tags", "time_limits")}
    searched = client.post("/api/v1/sweeps", json={"name": "extended", "base": base, "strategy": "random",
                                                  "trials": 1, "space": {"optimizer.lr": {"log_uniform": [0.001, 0.1]}}})
    assert searched.status_code == 202, searched.text  # a sweep the extend example extends (a grid has no points to add)
    for (method, path), body in sorted(examples.items()):
        answer = client.request(method.upper(), path.replace("{job_id}", str(job.json()["id"])).replace("{sweep_id}", str(searched.json()["id"])),
                                json=body)
        assert answer.status_code < 300, (method, path, answer.text)
