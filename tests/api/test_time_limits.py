"""Time limits per job: asked for in the submission within the server's limits, reported in the error."""

from __future__ import annotations

import pytest

from tests.api.test_jobs_lifecycle import moons
from tests.conftest import wait_status


def test_soft_time_limit_stops_a_job_and_says_so(api):
    job = api.post("/api/v1/jobs", json={**moons(epochs=100000), "time_limits": {"soft_seconds": 1}}).json()
    assert job["time_limits"] == {"soft_seconds": 1, "hard_seconds": 3900}
    done = wait_status(api, job["id"], {"succeeded", "failed"}, timeout=60)
    assert done["status"] == "failed"
    error = done["error"]
    assert error["reason"] == "time_limit" and error["limit"] == "soft" and error["seconds"] == 1
    assert 0 < error["step"] < done["progress"]["total_steps"] and "soft time limit of 1 s exceeded" in error["message"]
    losses = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss"}).json()["loss"]["steps"]
    assert losses == list(range(error["step"]))  # what it trained is kept


def test_defaults_come_from_the_server(api):
    job = api.post("/api/v1/jobs", json=moons()).json()
    assert job["time_limits"] == {"soft_seconds": 3600, "hard_seconds": 3900}
    lowered = api.post("/api/v1/jobs", json={**moons(), "time_limits": {"hard_seconds": 60}}).json()
    assert lowered["time_limits"] == {"soft_seconds": 60, "hard_seconds": 60}


@pytest.mark.parametrize("limits, field, reason", [
    ({"soft_seconds": 4000}, "time_limits.soft_seconds", "JOB_SOFT_TIME_LIMIT"),
    ({"hard_seconds": 5000}, "time_limits.hard_seconds", "JOB_HARD_TIME_LIMIT"),
    ({"soft_seconds": 50, "hard_seconds": 40}, "time_limits.soft_seconds", "must not exceed hard_seconds"),
    ({"soft_seconds": 0}, "time_limits.soft_seconds", "greater than or equal to 1"),
    ({"soft_seconds": "10"}, "time_limits.soft_seconds", "integer"),
    ({"minutes": 3}, "time_limits.minutes", "unknown field"),
    ("fast", "time_limits", ""),
])
def test_bad_time_limits_are_422_naming_the_field(api, limits, field, reason):
    response = api.post("/api/v1/jobs", json={**moons(), "time_limits": limits})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field and reason in problem["detail"], problem
    sweep = api.post("/api/v1/sweeps", json={"base": moons(), "space": {"optimizer.lr": [0.1]}, "time_limits": limits})
    assert sweep.status_code == 422 and sweep.json()["field"] == field, sweep.text


def test_a_sweeps_base_spec_cannot_carry_job_metadata(api):
    for key, value in (("time_limits", {"soft_seconds": 5}), ("name", "x"), ("tags", {"a": "b"})):
        response = api.post("/api/v1/sweeps", json={"base": {**moons(), key: value}, "space": {"optimizer.lr": [0.1]}})
        assert response.status_code == 422 and response.json()["field"] == f"base.{key}", response.text
    sweep = api.post("/api/v1/sweeps", json={"base": moons(), "space": {"optimizer.lr": [0.1]}, "time_limits": {"soft_seconds": 5}})
    job = api.get("/api/v1/jobs", params={"sweep_id": sweep.json()["id"]}).json()["jobs"][0]
    assert job["time_limits"] == {"soft_seconds": 5, "hard_seconds": 3900}
