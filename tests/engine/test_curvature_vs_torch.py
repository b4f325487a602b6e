"""Hessian-vector products by the R-operator equal PyTorch's (`torch.autograd.functional.hvp` and
`hessian`) on random networks of every activation and loss, to a relative 1e-10 in float64; the
post's 2-2-1 network's 9×9 Hessian at its initial weights equals torch's; Lanczos finds the dense
Hessian's largest eigenvalue; and on a linear network with mse the Hessian is the closed form 2/n·XᵀX."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings

from engine import curvature
from engine.problem import build_problem
from tests.support.specs import SEED

from . import torch_reference as ref
from .torch_reference import networks, saturated


def surface_of(spec: dict) -> tuple[curvature.Curvature, np.ndarray]:
    """The spec's first batch and initial weights, as the engine holds them."""
    problem = build_problem(spec)
    network = problem.network
    n = problem.batch_size
    surface = curvature.Curvature(list(network.shapes[:]), list(network.activations), problem.loss,
                                  problem.X_train[:n].astype(np.float64), problem.Y_train[:n].astype(np.float64))
    return surface, network.flat_params[0].astype(np.float64).copy()


def torch_loss(spec: dict, surface: curvature.Curvature):
    layers = spec["model"]["layers"]
    X, Y = torch.tensor(surface.X), torch.tensor(surface.Y)

    def f(theta: torch.Tensor) -> torch.Tensor:
        params, at = [], 0
        for shape in surface.shapes:
            size = int(np.prod(shape))
            params.append(theta[at:at + size].reshape(shape))
            at += size
        Z, A = ref.forward(layers, params, X)
        return ref.loss(spec["loss"], layers[-1]["activation"], Z, A, Y)

    return f


def close(a: np.ndarray, b: np.ndarray, rel: float = 1e-10) -> None:
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= rel * scale, (np.abs(a - b).max(), scale)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_hessian_vector_products_equal_torch(spec):
    """To a relative 1e-10; for a probability loss on an output it is not fused with (bce on a softmax,
    cross-entropy on a sigmoid), whose second derivative divides by (p(1 - p))², to 1e-10 times that
    conditioning: two exact formulas in float64 differ by their rounding, amplified as much."""
    assume(not saturated(spec))
    surface, theta = surface_of(spec)
    v = np.random.default_rng(len(theta)).standard_normal(theta.size)
    grad, Hv = surface.hvp(theta, v)
    f = torch_loss(spec, surface)
    _, expected = torch.autograd.functional.hvp(f, torch.tensor(theta), torch.tensor(v))
    rel = 1e-10 * conditioning(spec, surface, theta)
    close(Hv, expected.numpy(), rel)
    expected_grad = torch.func.grad(f)(torch.tensor(theta)).numpy()
    close(grad, expected_grad, rel)
    if theta.size <= 60:  # the whole Hessian, column by column
        close(curvature.dense_hessian(surface, theta), torch.autograd.functional.hessian(f, torch.tensor(theta)).numpy(), rel)


def conditioning(spec: dict, surface: curvature.Curvature, theta: np.ndarray) -> float:
    """1 for mse and the fused losses; 1 / min (p(1 - p))² over the outputs for an unfused probability loss."""
    if surface.loss.fused or spec["loss"] == "mse":
        return 1.0
    A, tensors = surface.X, surface.split(theta)
    for W, b, activation in zip(tensors[::2], tensors[1::2], surface.activations, strict=True):
        A = activation.forward(A @ W.T + b)
    return max(1.0, float(1 / np.min(A * (1 - A)) ** 2))


def test_the_posts_network_has_torchs_9_by_9_hessian_at_its_initial_weights():
    spec = {**SEED, "batch_size": "full"}
    surface, theta = surface_of(spec)
    assert theta.size == 9
    H = curvature.dense_hessian(surface, theta)
    expected = torch.autograd.functional.hessian(torch_loss(spec, surface), torch.tensor(theta)).numpy()
    close(H, expected, 1e-12)
    assert np.allclose(H, H.T)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "elu"])
def test_lanczos_finds_the_largest_eigenvalue_of_the_dense_hessian(activation):
    rng = np.random.default_rng(3)
    spec = {"model": {"layers": [{"units": 12, "activation": activation}, {"units": 12, "activation": activation},
                                 {"units": 1, "activation": "sigmoid"}]},
            "loss": "bce", "data": {"builtin": "moons", "n_samples": 64}, "seed": 2}
    surface, theta = surface_of(spec)
    exact = np.linalg.eigvalsh(curvature.dense_hessian(surface, theta))
    top, used, converged = curvature.top_eigenvalues(lambda v: surface.hvp(theta, v)[1], theta.size, rng, k=1, tol=1e-10)
    assert converged and used < theta.size
    assert top[0] == pytest.approx(exact[-1], rel=1e-8)
    estimate = curvature.hutchinson_trace(lambda v: surface.hvp(theta, v)[1], theta.size, rng, probes=400)
    assert estimate == pytest.approx(exact.sum(), rel=0.15, abs=0.05 * np.abs(exact).sum())


def test_a_linear_network_with_mse_has_the_closed_form_hessian():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([0.5, -1.0, 2.0]) + 0.1 * rng.normal(size=40)
    spec = {"model": {"layers": [{"units": 1, "activation": "linear"}]}, "loss": "mse",
            "data": {"X": X.tolist(), "y": y.tolist()}, "steps": 1}
    surface, theta = surface_of(spec)
    augmented = np.hstack([X, np.ones((40, 1))])  # the weights, then the bias
    closed = 2 / 40 * augmented.T @ augmented
    close(curvature.dense_hessian(surface, theta), closed, 1e-13)
    figures = curvature.figures(surface, theta, lr=0.1, rng=rng)
    assert figures["sharpness"] == pytest.approx(np.linalg.eigvalsh(closed)[-1], rel=1e-10)
    assert figures["sharpness_x_lr"] == pytest.approx(0.1 * figures["sharpness"], rel=1e-15)
    assert figures["hessian_trace"] == pytest.approx(np.trace(closed), rel=1e-12)


def test_the_landscape_plane_its_directions_and_the_path_on_it():
    rng = np.random.default_rng(5)
    spec = {"model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
            "loss": "bce", "data": {"builtin": "moons", "n_samples": 64}, "seed": 3}
    surface, theta = surface_of(spec)
    values, vectors = np.linalg.eigh(curvature.dense_hessian(surface, theta))
    d1, d2 = curvature.top_directions(surface, theta, rng, tol=1e-12)
    assert abs(d1 @ vectors[:, -1]) == pytest.approx(1, abs=1e-6) and abs(d2 @ vectors[:, -2]) == pytest.approx(1, abs=1e-6)
    random = curvature.filter_normalised(surface.shapes, theta, rng)
    parts = [random[a:b] for a, b in zip(np.cumsum([0, *map(np.prod, surface.shapes)])[:-1], np.cumsum(list(map(np.prod, surface.shapes))),
                                          strict=True)]
    for i, (part, shape) in enumerate(zip(parts, surface.shapes, strict=True)):
        if i % 2:
            assert not part.any()  # biases stay put
        else:
            W = theta[sum(int(np.prod(s)) for s in surface.shapes[:i]):][:part.size].reshape(shape)
            np.testing.assert_allclose(np.linalg.norm(part.reshape(shape), axis=1), np.linalg.norm(W, axis=1), rtol=1e-12)
    axis, losses = curvature.landscape(surface, theta, d1, d2, span=0.5, points=11)
    assert losses.shape == (11, 11) and losses[5, 5] == surface.loss_value(theta) and axis[5] == 0
    assert losses[5, 0] > losses[5, 5] and losses[5, 10] > losses[5, 5]  # the sharpest direction curves up (λmax > 0 here)
    assert values[-1] > 0
    coordinates = curvature.project([theta + 0.3 * d1 - 0.2 * d2, theta], theta, d1, d2)
    np.testing.assert_allclose(coordinates, [[0.3, -0.2], [0, 0]], atol=1e-12)
    with pytest.raises(ValueError, match="2 to 101 points"):
        curvature.landscape(surface, theta, d1, d2, points=500)
