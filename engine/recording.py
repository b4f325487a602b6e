"""What a recorded step reports, as pure functions of the network's arrays.

Kept apart from the training loop so the loop stays short and the cost of recording can be
measured on its own (bench/engine_vs_torch.py). Metric names are the ones REST and MLflow show.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .network import Network

STAT_FAMILIES = ("grad_norm", "grad_mean", "grad_std", "grad_max", "weight_norm", "update_ratio")


@functools.lru_cache(maxsize=64)
def _keys(param_names: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Metric keys per family and parameter, built once per network shape rather than every step."""
    return tuple(tuple(f"{family}/{name}" for name in param_names) for family in STAT_FAMILIES)


# Below this many parameters, per-call overhead dominates: one segmented reduction over the flat
# vector beats a call per tensor. Above it, memory passes dominate: BLAS dot per tensor, no temporaries.
SEGMENTED_MAX_PARAMS = 32_768


def segment_sumsq(network: Network, flat: np.ndarray) -> np.ndarray:
    """Per-tensor sum of squares of a vector laid out like the flat parameters."""
    if flat.size <= SEGMENTED_MAX_PARAMS:
        return np.add.reduceat(np.square(flat, dtype=np.float64), network.starts)
    return np.array([float(np.dot(flat[s], flat[s])) for s in network.slices])


def _grad_sums_and_extremes(network: Network) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = network.flat_grads
    if g.size <= SEGMENTED_MAX_PARAMS:
        starts = network.starts
        return np.add.reduceat(g.astype(np.float64, copy=False), starts), np.maximum.reduceat(g, starts), np.minimum.reduceat(g, starts)
    parts = [g[s] for s in network.slices]
    ones = _ones(max(v.size for v in parts), g.dtype)
    return (np.array([float(np.dot(v, ones[: v.size])) for v in parts]),  # a BLAS dot sums ~3x faster than add.reduce
            np.array([np.maximum.reduce(v) for v in parts]), np.array([np.minimum.reduce(v) for v in parts]))


@functools.lru_cache(maxsize=8)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    return np.ones(n, dtype=dtype)


def gradient_metrics(network: Network, weight_sq: np.ndarray, update_sq: np.ndarray) -> dict[str, float]:
    """Per parameter: grad_norm, grad_mean, grad_std (population), grad_max (max |g|), weight_norm,
    update_ratio (|update| / |weight|); and vanishing_ratio (first over last layer's weight-gradient norm).

    Each statistic takes one pass over the gradients; `weight_sq` / `update_sq` are per-tensor sums of
    squares of the weights before the update and of the update (see `segment_sumsq`)."""
    sizes = network.sizes
    grad_sq = segment_sumsq(network, network.flat_grads)
    sums, maxes, mins = _grad_sums_and_extremes(network)
    mean = sums / sizes
    std = np.sqrt(np.maximum(grad_sq / sizes - mean * mean, 0.0))
    gmax = np.maximum(maxes, -mins).astype(np.float64)
    grad_norm, weight_norm = np.sqrt(grad_sq), np.sqrt(weight_sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt(update_sq) / weight_norm  # inf / nan where a tensor is all zeros: dropped below
    out: dict[str, float] = {}
    for keys, values in zip(_keys(tuple(network.param_names())), (grad_norm, mean, std, gmax, weight_norm, ratio)):
        out.update(zip(keys, values.tolist()))
    first, last = grad_norm[0], grad_norm[-2]  # dense_1.weight, dense_L.weight
    if len(sizes) > 2 and last > 0:
        out["vanishing_ratio"] = float(first / last)
    return finite_only(out)


def dead_fractions(network: Network) -> dict[str, float]:
    """For ReLU-family layers: the fraction of units whose pre-activation is <= 0 on the whole batch."""
    out = {}
    for name, layer, Z in zip(network.names, network.layers, network.Z):
        if layer.activation.hinge_at_zero:
            out[f"dead_fraction/{name}"] = float(np.count_nonzero((Z <= 0).all(axis=0))) / Z.shape[1]
    return out


def norm(a: np.ndarray) -> float:
    """L2 norm, rescaled when the sum of squares overflows though every entry is finite."""
    flat = a.reshape(-1)
    squared = float(np.dot(flat, flat))
    if math.isfinite(squared):
        return math.sqrt(squared)
    peak = float(np.abs(flat).max())
    return peak * norm(flat / peak) if math.isfinite(peak) and peak > 0 else math.inf


def norms(arrays: list[np.ndarray]) -> list[float]:
    """L2 norm of each array."""
    return [norm(a) for a in arrays]


def finite_only(metrics: dict[str, float]) -> dict[str, float]:
    """Drop statistics that overflowed: users only ever see numbers the code really computed."""
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def correct(loss_name: str, outputs: np.ndarray, Y: np.ndarray) -> tuple[int, int]:
    """(right, counted) predictions: bce per output at threshold 0.5, cross_entropy by argmax."""
    if loss_name == "cross_entropy":
        return int(np.count_nonzero(outputs.argmax(axis=1) == Y.argmax(axis=1))), outputs.shape[0]
    return int(np.count_nonzero((outputs > 0.5) == (Y > 0.5))), outputs.size


def accuracy(loss_name: str, outputs: np.ndarray, Y: np.ndarray) -> float | None:
    """Classification accuracy (None for mse)."""
    if loss_name == "mse":
        return None
    right, counted = correct(loss_name, outputs, Y)
    return right / counted
