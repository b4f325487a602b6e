"""Time limits in a submission: within the server's limits, reported per field when not (the app in-process).
That a job stops at its soft limit is tests/worker/test_training.py's."""

from __future__ import annotations

import pytest

from tests.support.specs import moons


def test_defaults_come_from_the_server(client):
    job = client.post("/api/v1/jobs", json=moons()).json()
    assert job["time_limits"] == {"soft_seconds": 3600, "hard_seconds": 3900}
    lowered = client.post("/api/v1/jobs", json={**moons(), "time_limits": {"hard_seconds": 60}}).json()
    assert lowered["time_limits"] == {"soft_seconds": 60, "hard_seconds": 60}


@pytest.mark.parametrize(("limits", "field", "reason"), [
    ({"soft_seconds": 4000}, "time_limits.soft_seconds", "JOB_SOFT_TIME_LIMIT"),
    ({"hard_seconds": 5000}, "time_limits.hard_seconds", "JOB_HARD_TIME_LIMIT"),
    ({"soft_seconds": 50, "hard_seconds": 40}, "time_limits.soft_seconds", "must not exceed hard_seconds"),
    ({"soft_seconds": 0}, "time_limits.soft_seconds", "greater than or equal to 1"),
    ({"soft_seconds": "10"}, "time_limits.soft_seconds", "integer"),
    ({"minutes": 3}, "time_limits.minutes", "unknown field"),
    ("fast", "time_limits", ""),
])
def test_bad_time_limits_are_422_naming_the_field(client, limits, field, reason):
    response = client.post("/api/v1/jobs", json={**moons(), "time_limits": limits})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field and reason in problem["detail"], problem
    sweep = client.post("/api/v1/sweeps", json={"base": moons(), "space": {"optimizer.lr": [0.1]}, "time_limits": limits})
    assert sweep.status_code == 422 and sweep.json()["field"] == field, sweep.text


def test_a_sweeps_base_spec_cannot_carry_job_metadata(client):
    for key, value in (("time_limits", {"soft_seconds": 5}), ("name", "x"), ("tags", {"a": "b"})):
        response = client.post("/api/v1/sweeps", json={"base": {**moons(), key: value}, "space": {"optimizer.lr": [0.1]}})
        assert response.status_code == 422 and response.json()["field"] == f"base.{key}", response.text
    sweep = client.post("/api/v1/sweeps", json={"base": moons(), "space": {"optimizer.lr": [0.1]}, "time_limits": {"soft_seconds": 5}})
    job = client.get("/api/v1/jobs", params={"sweep_id": sweep.json()["id"]}).json()["jobs"][0]
    assert job["time_limits"] == {"soft_seconds": 5, "hard_seconds": 3900}
