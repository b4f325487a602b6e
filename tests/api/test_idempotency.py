"""Idempotency-Key on POST /jobs and POST /sweeps: the same key and body give the same resource,
even from concurrent requests; the same key with another body is a 409. The app in-process."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.support.specs import moons


def test_same_key_and_body_return_the_same_job(client):
    key, body = str(uuid.uuid4()), {**moons(), "experiment": f"idem-{uuid.uuid4().hex[:8]}"}
    first = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    again = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert len(client.get("/api/v1/jobs", params={"experiment": body["experiment"]}).json()["jobs"]) == 1
    # the same body without a key is a new job
    assert client.post("/api/v1/jobs", json=body).json()["id"] != first.json()["id"]


def test_a_deleted_jobs_key_creates_the_job_anew(client):
    """The key named a job that is gone: replaying it would answer a 404 for a valid request (schemathesis found it)."""
    key, body = str(uuid.uuid4()), moons()
    first = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key}).json()
    client.post(f"/api/v1/jobs/{first['id']}/cancel")
    assert client.delete(f"/api/v1/jobs/{first['id']}").status_code == 204
    again = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers  # made anew (SQLite may give it the freed id)
    assert client.get(f"/api/v1/jobs/{again.json()['id']}").status_code == 200
    replayed = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    assert replayed.json()["id"] == again.json()["id"] and replayed.headers["Idempotent-Replayed"] == "true"


def test_same_key_with_another_body_is_a_conflict(client):
    key = str(uuid.uuid4())
    assert client.post("/api/v1/jobs", json=moons(seed=1), headers={"Idempotency-Key": key}).status_code == 202
    conflict = client.post("/api/v1/jobs", json=moons(seed=2), headers={"Idempotency-Key": key})
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert conflict.json()["field"] == "Idempotency-Key"
    # and a job's key is not a sweep's
    sweep = {"base": moons(), "space": {"optimizer.lr": [0.01]}}
    assert client.post("/api/v1/sweeps", json=sweep, headers={"Idempotency-Key": key}).status_code == 409


def test_concurrent_requests_with_one_key_create_one_job(client):
    key, body = str(uuid.uuid4()), {**moons(), "experiment": f"idem-race-{uuid.uuid4().hex[:8]}"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key}), range(8)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(client.get("/api/v1/jobs", params={"experiment": body["experiment"]}).json()["jobs"]) == 1


def test_same_key_and_body_return_the_same_sweep(client):
    key = str(uuid.uuid4())
    body = {"base": moons(epochs=1), "space": {"optimizer.lr": [0.01, 0.02]}, "experiment": f"idem-{uuid.uuid4().hex[:8]}"}
    first = client.post("/api/v1/sweeps", json=body, headers={"Idempotency-Key": key})
    again = client.post("/api/v1/sweeps", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.post("/api/v1/sweeps", json={**body, "seeds": 2}, headers={"Idempotency-Key": key}).status_code == 409


def test_malformed_keys_are_rejected(client):
    for bad in ("x" * 256, "with space", "tab\there"):
        response = client.post("/api/v1/jobs", json=moons(), headers={"Idempotency-Key": bad})
        assert response.status_code == 400 and response.json()["field"] == "Idempotency-Key", bad
