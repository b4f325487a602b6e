"""What a recorded step reports, as pure functions of the network's arrays.

Kept apart from the training loop so the loop stays short and the cost of recording can be
measured on its own (bench/engine_vs_torch.py). Metric names are the ones REST and MLflow show.
"""

from __future__ import annotations

import math

import numpy as np

from .network import Network


def tensor_stats(g: np.ndarray) -> tuple[float, float, float, float]:
    """(L2 norm, mean, std, max |g|) in four passes and no temporaries."""
    n = g.size
    flat = g.reshape(-1)
    sumsq = squared_norms([flat])[0]
    mean = float(flat.sum()) / n
    var = max(sumsq / n - mean * mean, 0.0)
    return norm(flat, sumsq), mean, math.sqrt(var), max(float(flat.max()), -float(flat.min()))


def gradient_metrics(network: Network, weight_norms: list[float], update_norms: list[float]) -> dict[str, float]:
    """Per parameter: grad_norm, grad_mean, grad_std, grad_max, weight_norm, update_ratio; and
    the vanishing-gradient indicator (first-layer over last-layer weight-gradient norm).

    `weight_norms` are of the weights before the step's update; `update_norms` of the update."""
    out: dict[str, float] = {}
    weight_grad_norms = []
    for name, g, w_norm, u_norm in zip(network.param_names(), network.grads(), weight_norms, update_norms):
        norm, mean, std, gmax = tensor_stats(g)
        out[f"grad_norm/{name}"] = norm
        out[f"grad_mean/{name}"] = mean
        out[f"grad_std/{name}"] = std
        out[f"grad_max/{name}"] = gmax
        out[f"weight_norm/{name}"] = w_norm
        if w_norm > 0:
            out[f"update_ratio/{name}"] = u_norm / w_norm
        if name.endswith(".weight"):
            weight_grad_norms.append(norm)
    if len(weight_grad_norms) > 1 and weight_grad_norms[-1] > 0:
        out["vanishing_ratio"] = weight_grad_norms[0] / weight_grad_norms[-1]
    return out


def dead_fractions(network: Network) -> dict[str, float]:
    """For ReLU-family layers: the fraction of units whose pre-activation is <= 0 on the whole batch."""
    out = {}
    for name, layer, Z in zip(network.names, network.layers, network.Z):
        if layer.activation.hinge_at_zero:
            out[f"dead_fraction/{name}"] = float((Z <= 0).all(axis=0).mean())
    return out


def squared_norms(arrays: list[np.ndarray]) -> list[float]:
    """Sum of squares of each array (one BLAS pass each); inf if it overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        return [float(np.dot(a.reshape(-1), a.reshape(-1))) for a in arrays]


def norm(a: np.ndarray, squared: float | None = None) -> float:
    """L2 norm, rescaled when the sum of squares overflows though every entry is finite."""
    squared = squared_norms([a])[0] if squared is None else squared
    if math.isfinite(squared):
        return math.sqrt(squared)
    peak = float(np.abs(a).max())
    return peak * math.sqrt(squared_norms([a / peak])[0]) if math.isfinite(peak) and peak > 0 else math.inf


def norms(arrays: list[np.ndarray]) -> list[float]:
    """L2 norm of each array."""
    return [norm(a, sq) for a, sq in zip(arrays, squared_norms(arrays))]


def finite_only(metrics: dict[str, float]) -> dict[str, float]:
    """Drop statistics that overflowed: users only ever see numbers the code really computed."""
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def accuracy(loss_name: str, outputs: np.ndarray, Y: np.ndarray) -> float | None:
    """Classification accuracy for bce (threshold 0.5, per output) and cross_entropy (argmax)."""
    if loss_name == "cross_entropy":
        return float((outputs.argmax(axis=1) == Y.argmax(axis=1)).mean())
    if loss_name == "bce":
        return float(((outputs > 0.5) == (Y > 0.5)).mean())
    return None
