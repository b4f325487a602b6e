"""Curvature through the running service, on a case checked by hand: a linear network with mse has
the constant Hessian 2/n·XᵀX, so every recorded `sharpness` is its largest eigenvalue λ, and gradient
descent with η just below 2/λ converges while η just above it diverges."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.waiting import wait_status


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
