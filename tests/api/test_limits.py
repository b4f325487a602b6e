"""Limits a client cannot lift, each tested with the request that once got past it: a recording budget
raised in the spec, a network with thousands of metric keys, an owner filling the store, sampled
sweep points over the limits no single dimension breaks, and sweep metadata with control characters."""

from __future__ import annotations

import pytest

from tests.support.inprocess import http, make_app
from tests.support.problems import assert_problem
from tests.support.specs import SEED, moons


@pytest.fixture(scope="module")
def small_quota(redis_server, tmp_path_factory):
    app, _ = make_app("sqlite", redis_server.url, tmp_path_factory, max_owner_bytes=400_000)
    return app


@pytest.fixture(scope="module")
def small_answers(redis_server, tmp_path_factory):
    app, _ = make_app("sqlite", redis_server.url, tmp_path_factory, max_response_points=1000)
    return app


def test_a_spec_cannot_raise_its_recording_budget_past_the_servers(client):
    wide = [{"units": 256, "activation": "relu"}, {"units": 256, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]
    spec = moons(model={"layers": wide}, data={"builtin": "moons", "n_samples": 1000}, steps=1_000_000, epochs=None, batch_size=10,
                 record={"every": 1, "gradients": "full", "trace": True, "max_bytes": 10**18})
    problem = assert_problem(client.post("/api/v1/jobs", json=spec), 422, "record.max_bytes", "MAX_RECORD_BYTES", kind="over-limit")
    assert problem["limit"] == {"name": "MAX_RECORD_BYTES", "value": 64 * 1024 * 1024, "requested": 10**18}


def test_the_budget_counts_metric_points_too(client):
    """1,000,000 steps × 13 keys recorded every step is 156 MB of points: over the default 64 MiB."""
    spec = moons(steps=1_000_000, epochs=None, record={"every": 1})
    assert_problem(client.post("/api/v1/jobs", json=spec), 422, "record.max_bytes", "metric points")
    assert client.post("/api/v1/jobs", json=moons(steps=1_000_000, epochs=None, record={"every": 100})).status_code == 202


def test_a_network_cannot_record_thousands_of_metric_keys(client):
    deep = [{"units": 2, "activation": "relu"}] * 998 + [{"units": 1, "activation": "sigmoid"}]
    problem = assert_problem(client.post("/api/v1/jobs", json=moons(model={"layers": deep}, epochs=1)), 422, "model.layers",
                             "MAX_METRIC_KEYS", kind="over-limit")
    assert problem["limit"]["requested"] > problem["limit"]["value"] == 1000


def test_an_owner_cannot_record_past_the_quota(small_quota):
    spec = moons(epochs=50, record={"every": 1})  # 400 steps of some 25 keys: about 120 KB of points each
    with http(small_quota) as client:
        codes = [client.post("/api/v1/jobs", json=spec) for _ in range(6)]
    accepted = [a for a in codes if a.status_code == 202]
    assert len(accepted) >= 2 and codes[:len(accepted)] == accepted  # the first ones fit, then none does
    for refused in codes[len(accepted):]:
        problem = assert_problem(refused, 422, "record", "MAX_OWNER_BYTES", kind="over-limit")
        assert problem["limit"]["requested"] > problem["limit"]["value"] == 400_000


def test_sampled_points_over_a_limit_are_refused_before_a_job_exists(client):
    """No dimension is over a limit at its bounds, but every combination is: 15,000+ samples × 200+
    epochs of batches of 1 is 3,000,000+ steps, over MAX_STEPS (2,000,000 here)."""
    body = {"base": moons(data={"builtin": "moons", "n_samples": 100}, epochs=1, batch_size=1, record={"every": 1000}),
            "strategy": "random", "trials": 3, "max_parallel": 3,
            "space": {"data.n_samples": {"int": [15_000, 20_000]}, "epochs": {"int": [200, 1000]}}}
    answer = client.post("/api/v1/sweeps", json=body)
    assert answer.status_code == 202, answer.text
    sweep = client.get(answer.headers["Location"]).json()
    assert sweep["jobs"] == [] and sweep["status"] == "finished"
    refused = sweep["refused_points"]
    assert len(refused) == 3 and {r["limit"]["name"] for r in refused} == {"MAX_STEPS"}
    assert all(r["params"]["data.n_samples"] * r["params"]["epochs"] > 2_000_000 for r in refused)
    assert all(r["limit"]["requested"] > r["limit"]["value"] for r in refused)


@pytest.mark.parametrize(("metadata", "field"), [
    ({"name": "lr\r\nsweep"}, "name"),
    ({"experiment": "=cmd|'/c calc'!A1\n"}, "experiment"),
    ({"tags": {f"t{i}": "x" * 500 for i in range(2000)}}, "tags"),
    ({"tags": {"team": "a\x00b"}}, "tags.team"),
])
def test_sweep_metadata_obeys_the_job_rules(client, metadata, field):
    body = {"base": moons(epochs=1), "space": {"optimizer.lr": [0.01, 0.02]}, **metadata}
    problem = assert_problem(client.post("/api/v1/sweeps", json=body), 422)
    assert problem["field"] == field or problem["field"].startswith(field), problem
    job = assert_problem(client.post("/api/v1/jobs", json={**SEED, **metadata}), 422)
    assert job["field"] == problem["field"]


def test_metrics_answers_are_bounded_and_say_how_to_ask_for_less(small_answers):
    from worker.training import train

    with http(small_answers) as client:
        job = client.post("/api/v1/jobs", json=moons(epochs=20)).json()  # 160 steps of some 25 keys: about 4,000 points
        assert train(job["id"], small_answers.config["SETTINGS"]) == "succeeded"
        url = f"/api/v1/jobs/{job['id']}/metrics"
        problem = assert_problem(client.get(url), 422, "keys", "MAX_RESPONSE_POINTS", kind="answer-too-large")
        assert problem["limit"]["requested"] > problem["limit"]["value"] == 1000
        assert_problem(client.get(url, headers={"Accept": "text/csv"}), 422, "keys")
        assert client.get(url, params={"keys": "loss"}).json()["loss"]["steps"] == list(range(160))
        assert all(len(s["steps"]) <= 8 for s in client.get(url, params={"max_points": 8}).json().values())
        rows = client.get(url, params={"keys": "loss,val_loss"}, headers={"Accept": "text/csv"}).text.splitlines()
        assert rows[0] == "key,step,value" and len(rows) == 1 + 160 + 20
