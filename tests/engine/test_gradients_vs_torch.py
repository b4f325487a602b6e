"""Backpropagated gradients equal PyTorch autograd, and central finite differences, on random networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

from engine.gradcheck import max_relative_error, numeric_gradients
from engine.problem import build_problem
from engine.training import Trainer

from . import torch_reference as ref
from .torch_reference import networks, saturated


def engine_gradients(spec: dict) -> tuple[float, list[np.ndarray]]:
    record = next(iter(Trainer(spec)))
    return record.loss, list(record.gradients.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_gradients_equal_torch_autograd(spec):
    # A saturated tanh or sigmoid (f' = 1 - a² or a(1 - a) of order 1e-7) turns one ulp of difference between
    # NumPy's and PyTorch's f(z) into 1e-9 relative in every gradient before it: no summation order helps.
    assume(not saturated(spec))
    loss, grads = engine_gradients(spec)
    torch_loss, torch_grads = ref.gradients(spec)
    assert ref.relative_error(loss, torch_loss) <= 1e-10
    for name, mine, theirs in zip(["W", "b"] * (len(grads) // 2), grads, torch_grads, strict=True):
        err = ref.relative_error(mine, theirs)
        assert err <= 1e-10, f"{name}: mine {mine} vs torch {theirs} (relative error {err:.3g})"


@settings(max_examples=60, deadline=None)
@given(networks())
def test_gradients_equal_central_differences(spec):
    _, grads = engine_gradients(spec)
    problem = build_problem(spec)
    n = problem.batch_size
    problem.network.forward(problem.X_train[:n])
    # Finite differences are meaningless across a kink: skip points within eps of ReLU's corner.
    for activation, Z in zip(problem.network.activations, problem.network.Z, strict=True):
        assume(not activation.hinge_at_zero or np.abs(Z).min() > 1e-4)
    numeric = numeric_gradients(problem.network, problem.loss, problem.X_train[:n], problem.Y_train[:n])
    assert max_relative_error(grads, numeric) < 1e-5


def test_linear_output_with_bce_is_exact_by_the_chain_rule():
    """The post's exercise 1: z2 = y_hat directly, so dL/dz2 = (y_hat - y) / (y_hat (1 - y_hat))."""
    spec = {
        "model": {"layers": [{"units": 2, "activation": "relu"}, {"units": 1, "activation": "linear"}],
                  "weights": [[[0.5, -0.2], [0.3, 0.8]], [[0.6, -0.4]]], "biases": [[0.1, -0.1], [0.0]]},
        "loss": "bce", "data": {"X": [[0.5, 0.1]], "y": [0]}, "optimizer": {"name": "sgd", "lr": 0.1},
        "steps": 1, "record": {"gradients": "full", "trace": True},
    }
    record = next(iter(Trainer(spec)))
    y_hat = 0.6 * 0.33 - 0.4 * 0.13  # 0.146
    delta2 = record.trace["layers"][1]["delta"][0][0]
    assert delta2 == pytest.approx((y_hat - 0) / (y_hat * (1 - y_hat)), rel=1e-12)
    _, torch_grads = ref.gradients(spec)
    for mine, theirs in zip(record.gradients.values(), torch_grads, strict=True):
        assert ref.relative_error(mine, theirs) <= 1e-12
