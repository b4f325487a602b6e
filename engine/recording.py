"""What a recorded step reports, as pure functions of the network's arrays.

Kept apart from the training loop so the loop stays short and the cost of recording can be
measured on its own (bench/engine_vs_torch.py). Metric names are the ones REST and MLflow show.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .activations import make_activation
from .network import Network
from .spec import JobSpec

STAT_FAMILIES = ("grad_norm", "grad_mean", "grad_std", "grad_max", "weight_norm", "update_ratio")


@functools.lru_cache(maxsize=64)
def _keys(param_names: tuple[str, ...]) -> tuple[str, ...]:
    """Metric keys, family by family and parameter by parameter, built once per network shape."""
    return tuple(f"{family}/{name}" for family in STAT_FAMILIES for name in param_names)


# Below this many parameters, per-call overhead dominates: one segmented reduction over the flat
# vector beats a call per tensor. Above it, memory passes dominate: BLAS dot per tensor, no temporaries.
SEGMENTED_MAX_PARAMS = 32_768


def segment_sumsq(network: Network, flat: np.ndarray) -> np.ndarray:
    """Per-tensor sum of squares of a vector laid out like the flat parameters."""
    if flat.size <= SEGMENTED_MAX_PARAMS:
        return np.add.reduceat(np.square(flat, dtype=np.float64), network.starts)
    return np.array([float(np.dot(flat[s], flat[s])) for s in network.slices])


def grad_moments(network: Network, flat_grads: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tensor: the sum of squares, the sum and max |g| of the gradients (the network's, or
    `flat_grads` laid out like them: a member of a stack).

    Small networks: one segmented reduction each over the flat vector. Big ones: each tensor's three
    while it is in cache, with BLAS where it is fastest (a weight matrix sums as 1ᵀ dW 1, two matrix
    products that read it once) and no |g| temporary."""
    g = network.flat_grads if flat_grads is None else flat_grads
    if g.size <= SEGMENTED_MAX_PARAMS:
        starts = network.starts
        return (np.add.reduceat(np.square(g, dtype=np.float64), starts), np.add.reduceat(g, starts, dtype=np.float64),
                np.maximum.reduceat(np.abs(g), starts))
    sumsq, sums, peaks = [], [], []
    for v in (network.grads() if flat_grads is None else network.split(flat_grads)):
        flat = v.reshape(-1)
        sumsq.append(float(np.dot(flat, flat)))
        sums.append(float(_ones(v.shape[0], v.dtype) @ v @ _ones(v.shape[1], v.dtype)) if v.ndim == 2 else float(np.add.reduce(v)))
        peaks.append(max(float(np.maximum.reduce(flat)), -float(np.minimum.reduce(flat))))
    return np.array(sumsq), np.array(sums), np.array(peaks)


@functools.lru_cache(maxsize=32)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    return np.ones(n, dtype=dtype)


def gradient_metrics(network: Network, weight_sq: np.ndarray, update_sq: np.ndarray,
                     moments: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    """Per parameter: grad_norm, grad_mean, grad_std (population), grad_max (max |g|), weight_norm,
    update_ratio (|update| / |weight|); and vanishing_ratio (first over last layer's weight-gradient norm).

    `moments` are the gradients' (see `grad_moments`); `weight_sq` / `update_sq` are per-tensor sums
    of squares of the weights before the update and of the update (see `segment_sumsq`). Runs under
    the trainer's `np.errstate`: a tensor of zeros makes an inf or nan ratio, which is dropped."""
    sizes = network.sizes
    grad_sq, sums, peaks = moments
    stats = np.empty((len(STAT_FAMILIES), sizes.size))  # one row per family, in STAT_FAMILIES' order
    mean = np.divide(sums, sizes, out=stats[1])
    np.sqrt(grad_sq, out=stats[0])  # grad_norm
    variance = grad_sq / sizes - mean * mean
    np.sqrt(np.maximum(variance, 0.0, out=variance), out=stats[2])  # grad_std
    stats[3] = peaks  # grad_max
    weight_norm = np.sqrt(weight_sq, out=stats[4])
    np.divide(np.sqrt(update_sq), weight_norm, out=stats[5])  # update_ratio; inf / nan where a tensor is all zeros: dropped below
    values = stats.ravel().tolist()
    out = dict(zip(_keys(network.param_names), values, strict=True))
    first, last = values[0], values[sizes.size - 2]  # grad_norm of dense_1.weight and of dense_L.weight
    if sizes.size > 2 and last > 0:
        out["vanishing_ratio"] = first / last
    return out if all(map(math.isfinite, values)) else finite_only(out)


@functools.lru_cache(maxsize=64)
def _dead_keys(names: tuple[str, ...], hinged: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
    """(layer index, metric key) of the ReLU-family layers, built once per network shape."""
    return tuple((i, f"dead_fraction/{names[i]}") for i in hinged)


def dead_fractions(network: Network) -> dict[str, float]:
    """For ReLU-family layers: the fraction of units whose pre-activation is <= 0 on the whole batch."""
    Zs = network.Z
    return {key: np.count_nonzero(np.maximum.reduce(Zs[i], axis=0) <= 0) / Zs[i].shape[1]
            for i, key in _dead_keys(network.names, network.hinged)}


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


def metric_keys(spec: JobSpec) -> list[str]:
    """Every metric key a job of `spec` can record (those of a step that diverged aside), in a stable order.

    Mirrors what the trainer writes: `loss` at recorded steps; the per-tensor families and
    `vanishing_ratio` (more than one layer) unless `record.gradients` is `none`; `dead_fraction/<layer>`
    for ReLU-family layers; and at each epoch's end `train_loss`, `train_accuracy` (classification
    losses) and, with a validation split, `val_loss` and `val_accuracy`."""
    layers = spec.model.layers
    names = [f"dense_{i + 1}" for i in range(len(layers))]
    keys = ["loss"]
    if spec.record.gradients != "none":
        keys += _keys(tuple(f"{name}.{kind}" for name in names for kind in ("weight", "bias")))
        if len(layers) > 1:
            keys.append("vanishing_ratio")
    keys += [f"dead_fraction/{name}" for name, layer in zip(names, layers, strict=True)
             if make_activation(layer.activation, layer.alpha).hinge_at_zero]
    classify = spec.loss != "mse"
    keys += ["train_loss"] + (["train_accuracy"] if classify else [])
    if spec.data.validation_split > 0:
        keys += ["val_loss"] + (["val_accuracy"] if classify else [])
    return keys


# One row per metric key family: (key, when it is recorded, what it is). `python -m engine metrics`
# prints it; docs/job-spec.md carries it; tests hold it to what `metric_keys` (and so training) writes.
METRIC_REFERENCE: tuple[tuple[str, str, str], ...] = (
    ("loss", "every recorded step", "the mini-batch's loss, before the step's update"),
    ("grad_norm/<tensor>", "recorded steps, unless `record.gradients` is `none`", "L2 norm of ∂L/∂tensor"),
    ("grad_mean/<tensor>", "as above", "mean of ∂L/∂tensor"),
    ("grad_std/<tensor>", "as above", "standard deviation of ∂L/∂tensor"),
    ("grad_max/<tensor>", "as above", "largest \\|∂L/∂tensor\\|"),
    ("weight_norm/<tensor>", "as above", "L2 norm of the tensor before the update"),
    ("update_ratio/<tensor>", "as above", "‖Δtensor‖ / ‖tensor‖ of the step's update"),
    ("vanishing_ratio", "as above, with more than one layer", "first layer's weight-gradient norm over the last layer's"),
    ("dead_fraction/<layer>", "recorded steps, ReLU-family layers", "units with z ≤ 0 for every sample of the batch"),
    ("train_loss", "each epoch's end", "sample-weighted mean of the epoch's batch losses, as trained (dropout on)"),
    ("train_accuracy", "each epoch's end, `bce` and `cross_entropy`", "the same for accuracy"),
    ("val_loss", "each epoch's end, with `data.validation_split`", "the validation part with the epoch's final weights"),
    ("val_accuracy", "as above, `bce` and `cross_entropy`", "the same for accuracy"),
)


def metric_family(key: str) -> str:
    """The METRIC_REFERENCE row a key belongs to: `grad_norm/dense_1.weight` -> `grad_norm/<tensor>`."""
    family, slash, _ = key.partition("/")
    if not slash:
        return key
    return f"{family}/<layer>" if family == "dead_fraction" else f"{family}/<tensor>"


def reference_table(rows: tuple[tuple[str, str, str], ...], first: str) -> str:
    lines = [f"| {first} | recorded | meaning |", "|---|---|---|"]
    return "\n".join(lines + [f"| `{a}` | {b} | {c} |" for a, b, c in rows])
