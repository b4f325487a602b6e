"""Curvature through the running service, on a case checked by hand: a linear network with mse has
the constant Hessian 2/n·XᵀX, so every recorded `sharpness` is its largest eigenvalue λ, and gradient
descent with η just below 2/λ converges while η just above it diverges; and the landscape a training
worker computes is that quadratic, its path the run's own."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.waiting import wait_landscape, wait_status


def linear(lr: float, X: np.ndarray, y: np.ndarray) -> dict:
    return {"model": {"layers": [{"units": 1, "activation": "linear"}]}, "loss": "mse",
            "data": {"X": X.tolist(), "y": y.tolist()}, "optimizer": {"name": "sgd", "lr": lr}, "batch_size": "full",
            "steps": 20_000, "record": {"every": 500, "gradients": "none", "curvature": {"every": 1000}}, "diagnose": False}


def test_sharpness_is_the_closed_form_and_two_over_it_divides_converging_from_diverging(api):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 2)) * np.array([3.0, 0.5])
    y = X @ np.array([1.0, -2.0]) + 0.05 * rng.normal(size=30)
    augmented = np.hstack([X, np.ones((30, 1))])
    top = float(np.linalg.eigvalsh(2 / 30 * augmented.T @ augmented)[-1])
    below = api.post("/api/v1/jobs", json=linear(0.98 * 2 / top, X, y)).json()
    above = api.post("/api/v1/jobs", json=linear(1.02 * 2 / top, X, y)).json()
    assert wait_status(api, below["id"], {"succeeded", "diverged"})["status"] == "succeeded"
    assert wait_status(api, above["id"], {"succeeded", "diverged"})["status"] == "diverged"
    sharp = api.get(f"/api/v1/jobs/{below['id']}/metrics", params={"keys": "sharpness,sharpness_x_lr,loss"}).json()
    assert sharp["sharpness"]["steps"][:3] == [0, 1000, 2000]
    assert sharp["sharpness"]["values"] == pytest.approx([top] * len(sharp["sharpness"]["values"]), rel=1e-10)
    assert sharp["sharpness_x_lr"]["values"][0] == pytest.approx(1.96, rel=1e-10)  # below 2: it converges
    assert sharp["loss"]["values"][-1] < sharp["loss"]["values"][0] / 10
    rising = api.get(f"/api/v1/jobs/{above['id']}/metrics", params={"keys": "sharpness_x_lr"}).json()["sharpness_x_lr"]
    assert rising["values"][0] == pytest.approx(2.04, rel=1e-10)


def test_the_landscape_a_worker_computes_is_the_quadratic_and_its_path_the_runs(api):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(25, 2)) * np.array([2.0, 0.7])
    y = X @ np.array([-1.0, 0.5]) + 0.05 * rng.normal(size=25)
    augmented = np.hstack([X, np.ones((25, 1))])
    eigenvalues = np.linalg.eigvalsh(2 / 25 * augmented.T @ augmented)[::-1]
    spec = {**linear(0.5 * 2 / eigenvalues[0], X, y), "steps": 400, "record": {"every": 10}}
    job = api.post("/api/v1/jobs", json=spec).json()
    assert wait_status(api, job["id"], {"succeeded", "diverged"})["status"] == "succeeded"
    answer = wait_landscape(api, job["id"], step=100, points=15)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["eigenvalues"] == pytest.approx(eigenvalues[:2], rel=1e-10)
    L, h = np.array(body["loss"]), body["alpha"][1] - body["alpha"][0]
    assert (L[:, 2:] - 2 * L[:, 1:-1] + L[:, :-2]) / h ** 2 == pytest.approx(np.full((15, 13), eigenvalues[0]), rel=1e-6)
    assert [p["step"] for p in body["path"]] == [*range(0, 400, 10), 400]
    losses = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss"}).json()["loss"]
    recorded = dict(zip(losses["steps"], losses["values"], strict=True))
    for point in body["path"][:-1]:  # the replay's weights give the loss the run recorded at each step
        assert point["loss"] == pytest.approx(recorded[point["step"]], rel=1e-12)
    assert api.get(f"/api/v1/jobs/{job['id']}/landscape", params={"step": 100, "points": 15}).json()["computed_at"] == body["computed_at"]
