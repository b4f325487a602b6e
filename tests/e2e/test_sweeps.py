"""Sweeps over real HTTP: expansion, validation before queueing, max_parallel, leaderboard, importance, diff."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.support.specs import moons, small
from tests.support.waiting import wait_status, wait_sweep


def test_grid_sweep_with_seeds_runs_every_point_and_ranks_them(api):
    body = {"name": "lr-x-batch", "experiment": f"grid-{api.base_url.port}", "base": small(), "strategy": "grid",
            "space": {"optimizer.lr": [0.001, 0.01, 0.1], "batch_size": [4, "full"]}, "seeds": 2,
            "objective": {"metric": "val_loss", "goal": "minimize"}, "max_parallel": 4}
    created = api.post("/api/v1/sweeps", json=body)
    assert created.status_code == 202, created.text[:500]
    sweep = created.json()
    assert sweep["progress"]["planned_jobs"] == 12 and 0 < len(sweep["jobs"]) <= 4
    done = wait_sweep(api, sweep["id"])
    assert done["status"] == "finished" and done["progress"]["by_state"] == {"succeeded": 12}
    jobs = api.get("/api/v1/jobs", params={"sweep_id": sweep["id"], "limit": 100}).json()["jobs"]
    assert len(jobs) == 12
    # the leaderboard, recomputed from the jobs' own metrics
    by_point: dict[tuple, list[float]] = {}
    for job in jobs:
        full = api.get(f"/api/v1/jobs/{job['id']}", params={"include": "spec"}).json()
        val = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "val_loss"}).json()["val_loss"]["values"][-1]
        point = (full["spec"]["optimizer"]["lr"], full["spec"]["batch_size"])
        by_point.setdefault(point, []).append(val)
        assert full["spec"]["seed"] in (1, 2)
    expected = sorted((statistics.fmean(v), statistics.stdev(v), p) for p, v in by_point.items())
    board = done["leaderboard"]
    assert len(board) == 6
    for row, (mean, std, point) in zip(board, expected, strict=True):
        assert (row["params"]["optimizer.lr"], row["params"]["batch_size"]) == point
        assert row["objective_mean"] == pytest.approx(mean, rel=1e-12) and row["objective_std"] == pytest.approx(std, rel=1e-9)
    csv_text = api.get(f"/api/v1/sweeps/{sweep['id']}", headers={"Accept": "text/csv"}).text.splitlines()
    assert csv_text[0].startswith("rank,trial,optimizer.lr,batch_size,objective_mean") and len(csv_text) == 7
    importance = api.get(f"/api/v1/sweeps/{sweep['id']}/importance").json()["importance"]
    assert set(importance) == {"optimizer.lr", "batch_size"}


def test_random_and_tpe_sweeps_sample_within_the_space(api):
    for strategy in ("random", "tpe"):
        body = {"base": small(), "strategy": strategy, "trials": 5, "max_parallel": 2,
                "space": {"optimizer.lr": {"log_uniform": [1e-4, 1e-1]}, "model.layers[0].units": {"int": [2, 16]},
                          "model.layers[0].activation": {"choice": ["relu", "tanh"]}}}
        sweep = api.post("/api/v1/sweeps", json=body).json()
        done = wait_sweep(api, sweep["id"])
        assert done["progress"]["jobs"] == 5 and done["progress"]["by_state"] == {"succeeded": 5}
        for row in done["leaderboard"]:
            assert 1e-4 <= row["params"]["optimizer.lr"] <= 1e-1 and 2 <= row["params"]["model.layers[0].units"] <= 16
            spec = api.get(f"/api/v1/jobs/{row['jobs'][0]}/spec").json()
            assert spec["model"]["layers"][0]["units"] == row["params"]["model.layers[0].units"]


def test_max_parallel_bounds_the_active_jobs(api):
    body = {"base": small(epochs=30), "strategy": "grid", "space": {"optimizer.lr": [0.001, 0.002, 0.003, 0.004, 0.005]},
            "max_parallel": 2}
    sweep = api.post("/api/v1/sweeps", json=body).json()
    assert len(sweep["jobs"]) == 2
    seen_max = 0
    while True:
        state = api.get(f"/api/v1/sweeps/{sweep['id']}").json()
        active = sum(n for s, n in state["progress"]["by_state"].items() if s in ("queued", "running"))
        seen_max = max(seen_max, active)
        if state["status"] != "running":
            break
        time.sleep(0.1)
    assert seen_max <= 2 and state["progress"]["jobs"] == 5


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"base": small(), "space": {"optimizer.lr": [0.1, 0]}}, "optimizer.lr", "must be > 0"),
    ({"base": small(), "space": {"model.layers[5].units": [2]}}, "space.model.layers[5].units", "no 5"),
    ({"base": small(), "strategy": "tpe", "space": {"optimizer.lr": {"log_uniform": [1e-3, 1]}}}, "trials", "required"),
    ({"base": small(), "space": {"optimizer.lr": {"log_uniform": [0, 1]}}}, "space.optimizer.lr", "grid sweeps take lists"),
    ({"base": small(), "strategy": "random", "trials": 3, "space": {"optimizer.lr": {"log_uniform": [0, 1]}}},
     "space.optimizer.lr", "> 0"),
    ({"base": small(), "space": {"optimizer.lr": [0.1] * 30}, "seeds": 20}, "space", "MAX_SWEEP_JOBS"),
])
def test_bad_sweeps_are_refused_before_anything_is_queued(api, body, field, words):
    before = api.get("/api/v1/jobs", params={"limit": 1}).json()["jobs"]
    response = api.post("/api/v1/sweeps", json=body)
    assert response.status_code == 422, response.text[:300]
    problem = response.json()
    assert words in problem["detail"] and (problem["field"] == field or field in problem["detail"]), problem
    assert api.get("/api/v1/jobs", params={"limit": 1}).json()["jobs"] == before


def test_early_stopping_cancels_hopeless_points_and_keeps_their_points(api):
    base = small(epochs=40, data={"builtin": "moons", "n_samples": 100, "validation_split": 0.2})
    body = {"base": base, "strategy": "grid", "space": {"optimizer.lr": [0.05, 0.04, 0.03, 1e-6, 2e-6, 3e-6]}, "max_parallel": 2,
            "objective": {"metric": "val_loss", "goal": "minimize"}, "early_stop": {"rule": "median", "grace_steps": 20}}
    sweep = wait_sweep(api, api.post("/api/v1/sweeps", json=body).json()["id"])
    stopped = [row for row in sweep["leaderboard"] if row["status"] == "early_stopped"]
    assert stopped, sweep["leaderboard"]
    for row in stopped:
        job = api.get(f"/api/v1/jobs/{row['jobs'][0]}").json()
        assert job["status"] == "cancelled" and job["error"]["reason"] == "early_stopped"
        assert row["params"]["optimizer.lr"] < 1e-3
        points = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss"}).json()["loss"]["steps"]
        assert 0 < len(points) < job["progress"]["total_steps"]


def test_cancel_sweep(api):
    base = small(epochs=5000, batch_size=1, record={"every": 10})
    sweep = api.post("/api/v1/sweeps", json={"base": base, "space": {"optimizer.lr": [0.1, 0.2, 0.3]},
                                             "max_parallel": 1}).json()
    cancelled = api.post(f"/api/v1/sweeps/{sweep['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    for job in cancelled["jobs"]:
        assert wait_status(api, job["id"], {"cancelled"})["status"] == "cancelled"
    assert api.post(f"/api/v1/sweeps/{sweep['id']}/cancel").status_code == 409


def test_diff_finds_the_first_differing_step(api):
    online = moons(epochs=2, batch_size=1, shuffle=False)
    same = api.post("/api/v1/jobs", json=online).json()
    twin = api.post("/api/v1/jobs", json=online).json()
    f32 = api.post("/api/v1/jobs", json={**online, "dtype": "float32"}).json()
    for job in (same, twin, f32):
        wait_status(api, job["id"], {"succeeded"})
    identical = api.get(f"/api/v1/jobs/{same['id']}/diff/{twin['id']}").json()
    assert identical["identical"] and identical["final_weights"]["max_abs_difference"] == 0.0
    differ = api.get(f"/api/v1/jobs/{same['id']}/diff/{f32['id']}", params={"tolerance": 1e-12}).json()
    assert differ["first_difference"]["step"] == 0 and differ["first_difference"]["relative_difference"] > 1e-12
    other = api.post("/api/v1/jobs", json=moons(epochs=1, model={"layers": [{"units": 3, "activation": "relu"},
                                                                            {"units": 1, "activation": "sigmoid"}]})).json()
    assert api.get(f"/api/v1/jobs/{same['id']}/diff/{other['id']}").status_code == 422
