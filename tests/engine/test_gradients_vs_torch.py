"""Backpropagated gradients equal PyTorch autograd, and central finite differences, on random networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.gradcheck import max_relative_error, numeric_gradients
from engine.problem import build_problem
from engine.training import Trainer

from . import torch_reference as ref

HIDDEN = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh"]
# Output activations whose range suits each loss (bce and cross-entropy read probabilities).
OUTPUTS = {"mse": HIDDEN + ["softmax"], "bce": ["sigmoid", "softmax"], "cross_entropy": ["softmax", "sigmoid"]}


@st.composite
def networks(draw):
    """A random spec: 1-4 hidden layers, any activation, any loss, batch 1 / odd / full."""
    loss = draw(st.sampled_from(["mse", "bce", "cross_entropy"]))
    depth = draw(st.integers(1, 4))
    hidden = [draw(st.sampled_from(HIDDEN)) for _ in range(depth)]
    out_act = draw(st.sampled_from(OUTPUTS[loss]))
    min_out = 2 if (loss == "cross_entropy" or out_act == "softmax") else 1
    units = [draw(st.integers(1, 6)) for _ in range(depth)] + [draw(st.integers(min_out, 4))]
    n = draw(st.integers(1, 9))
    batch = draw(st.sampled_from([1, "odd", "full"]))
    batch_size = "full" if batch == "full" else (1 if batch == 1 else min(n, 3) if n >= 3 else 1)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 5))
    layers = []
    for act, u in zip(hidden + [out_act], units, strict=True):
        layer = {"units": u, "activation": act}
        if act in ("leaky_relu", "elu"):
            layer["alpha"] = float(rng.uniform(0.01, 1.5))
        layers.append(layer)
    fan = [n_in] + units
    weights = [rng.normal(0, 1.0 / np.sqrt(fan[i]), size=(fan[i + 1], fan[i])).tolist() for i in range(len(units))]
    biases = [rng.normal(0, 0.1, size=fan[i + 1]).tolist() for i in range(len(units))]
    X = rng.normal(size=(n, n_in)).tolist()
    k = units[-1]
    if loss == "cross_entropy":
        y = rng.integers(0, k, size=n).tolist() if rng.random() < 0.5 else np.eye(k)[rng.integers(0, k, size=n)].tolist()
    elif loss == "bce":
        y = rng.uniform(0, 1, size=(n, k)).round(2).tolist() if k > 1 else rng.integers(0, 2, size=n).tolist()
    else:
        y = rng.normal(size=(n, k)).tolist() if k > 1 else rng.normal(size=n).tolist()
    return {
        "model": {"layers": layers, "weights": weights, "biases": biases},
        "loss": loss, "data": {"X": X, "y": y}, "optimizer": {"name": "sgd", "lr": 0.1},
        "batch_size": batch_size, "steps": 1, "shuffle": False, "record": {"gradients": "full"},
    }


def saturated(spec: dict, floor: float = 1e-6) -> bool:
    """Whether a tanh or sigmoid unit's derivative is below `floor` on the first batch."""
    problem = build_problem(spec)
    network = problem.network
    network.forward(problem.X_train[:problem.batch_size])
    for activation, A in zip(network.activations, network.A, strict=True):
        if activation.name in ("tanh", "sigmoid") and np.abs(activation.derivative(A, A)).min() < floor:
            return True
    return False


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
