"""A job's diagnoses through the API (the app in-process, trained by the worker's own code): the list
with its evidence and sentence, the job's kinds, the jobs list filtered by kind, the spec's settings
validated like every field."""

from __future__ import annotations

import json

from tests.support.problems import assert_problem
from tests.support.specs import dead_relu


def test_an_overshooting_rates_dead_units_are_listed_and_filter_the_jobs(client, train):
    steep = client.post("/api/v1/jobs", json={**dead_relu(1.0), "experiment": "diagnosed"}).json()
    gentle = client.post("/api/v1/jobs", json={**dead_relu(0.5), "experiment": "diagnosed"}).json()
    assert train(steep["id"]) == train(gentle["id"]) == "succeeded"
    found = client.get(f"/api/v1/jobs/{steep['id']}/diagnoses").json()
    dead = [d for d in found["diagnoses"] if d["kind"] == "dead_units"]
    assert len(dead) == 1
    assert dead[0] | {"sentence": None, "evidence": None, "id": None, "found_at": None} == {
        "id": None, "kind": "dead_units", "severity": "warning", "step": 40, "ended_step": None, "layer": "dense_1", "sentence": None,
        "evidence": None, "found_at": None}
    assert "of 16 units of dense_1" in dead[0]["sentence"] and dead[0]["evidence"]["threshold"] == 0.5
    assert client.get(f"/api/v1/jobs/{steep['id']}").json()["diagnoses"] == [d["kind"] for d in found["diagnoses"]]
    assert client.get(f"/api/v1/jobs/{gentle['id']}/diagnoses").json()["diagnoses"] == []
    listed = client.get("/api/v1/jobs", params={"experiment": "diagnosed", "diagnosis": "dead_units"}).json()["jobs"]
    assert [j["id"] for j in listed] == [steep["id"]]
    assert_problem(client.get("/api/v1/jobs", params={"diagnosis": "sadness"}), 400, field="diagnosis", kind="bad-query")
    # a finished job's event stream carries its diagnoses before its end
    events = [line for line in client.get(f"/api/v1/jobs/{steep['id']}/events").text.split("\n\n") if "event: diagnosis" in line]
    sent = [json.loads(next(p for p in e.split("\n") if p.startswith("data: "))[6:]) for e in events]
    assert [d["id"] for d in sent] == [d["id"] for d in found["diagnoses"]]


def test_the_diagnose_settings_are_checked_like_every_field(client, train):
    assert_problem(client.post("/api/v1/jobs", json={**dead_relu(1.0), "diagnose": {"steps": 0}}), 422, kind="invalid-spec",
                   field="diagnose.steps")
    assert_problem(client.post("/api/v1/jobs", json={**dead_relu(1.0), "diagnose": {"patience": 3}}), 422, kind="invalid-spec",
                   field="diagnose.patience")
    off = client.post("/api/v1/jobs", json={**dead_relu(1.0), "diagnose": False}).json()
    assert train(off["id"]) == "succeeded"
    assert client.get(f"/api/v1/jobs/{off['id']}/diagnoses").json()["diagnoses"] == []
