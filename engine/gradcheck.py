"""Central finite differences of the loss, to check backpropagated gradients independently."""

from __future__ import annotations

import numpy as np

from .losses import Loss
from .network import Network


def loss_at(network: Network, loss: Loss, X: np.ndarray, Y: np.ndarray) -> float:
    """The loss of a network of one member on `X`."""
    Z, A = network.evaluate(X)
    return float(loss.value(A, Z, Y)[0])


def numeric_gradients(network: Network, loss: Loss, X: np.ndarray, Y: np.ndarray, eps: float = 1e-6) -> list[np.ndarray]:
    """dL/dp for every parameter of a network of one member by (L(p + eps) - L(p - eps)) / 2 eps, one
    entry at a time; one array per tensor, without the member axis."""
    grads = []
    for p in network.split(network.flat_params[0]):
        g = np.zeros_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            up = loss_at(network, loss, X, Y)
            flat[i] = keep - eps
            down = loss_at(network, loss, X, Y)
            flat[i] = keep
            gflat[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def max_relative_error(analytic: list[np.ndarray], numeric: list[np.ndarray], floor: float = 1e-4) -> float:
    """Largest |a - n| / max(|a| + |n|, floor) over all entries."""
    worst = 0.0
    for a, n in zip(analytic, numeric, strict=True):
        err = np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)
        worst = max(worst, float(err.max(initial=0.0)))
    return worst
