"""What a recorded step reports, as pure functions of the network's arrays, for every member at once.

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
# vectors beats a call per tensor. Above it, memory passes dominate: BLAS dot per tensor, no temporaries.
# Either way each member's figures come from its own row alone, whatever K is.
SEGMENTED_MAX_PARAMS = 32_768


def segment_sumsq(network: Network, flat: np.ndarray) -> np.ndarray:
    """Per member and tensor, the sum of squares of `(R, P)` rows laid out like the flat parameters: `(R, T)`."""
    if flat.shape[1] <= SEGMENTED_MAX_PARAMS:
        return np.add.reduceat(np.square(flat, dtype=np.float64), network.starts, axis=1)
    return np.array([[float(np.dot(row[s], row[s])) for s in network.slices] for row in flat])


def grad_moments(network: Network, grads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per member and tensor of `(R, P)` gradient rows: the sum of squares, the sum and the max |g|, each `(R, T)`.

    Small networks: one segmented reduction each over the rows. Big ones: each tensor's three while it
    is in cache, with BLAS where it is fastest (a weight matrix sums as 1ᵀ dW 1, two matrix products
    that read it once) and no |g| temporary."""
    if grads.shape[1] <= SEGMENTED_MAX_PARAMS:
        starts = network.starts
        return (np.add.reduceat(np.square(grads, dtype=np.float64), starts, axis=1), np.add.reduceat(grads, starts, axis=1, dtype=np.float64),
                np.maximum.reduceat(np.abs(grads), starts, axis=1))
    sumsq, sums, peaks = [], [], []
    for row in grads:
        for v in network.split(row):
            flat = v.reshape(-1)
            sumsq.append(float(np.dot(flat, flat)))
            sums.append(float(_ones(v.shape[0], v.dtype) @ v @ _ones(v.shape[1], v.dtype)) if v.ndim == 2 else float(np.add.reduce(v)))
            peaks.append(max(float(np.maximum.reduce(flat)), -float(np.minimum.reduce(flat))))
    shape = (grads.shape[0], len(network.slices))
    return np.reshape(sumsq, shape), np.reshape(sums, shape), np.reshape(peaks, shape)


@functools.lru_cache(maxsize=32)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    return np.ones(n, dtype=dtype)


def gradient_metrics(network: Network, weight_sq: np.ndarray, update_sq: np.ndarray,
                     moments: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[dict[str, float]]:
    """Per member (one dict per row): per parameter grad_norm, grad_mean, grad_std (population),
    grad_max (max |g|), weight_norm, update_ratio (|update| / |weight|); and vanishing_ratio (first over
    last layer's weight-gradient norm).

    `moments` are the gradients' (see `grad_moments`); `weight_sq` / `update_sq` are per-tensor sums
    of squares of the weights before the update and of the update (see `segment_sumsq`), all `(R, T)`.
    Runs under the trainer's `np.errstate`: a tensor of zeros makes an inf or nan ratio, which is dropped."""
    sizes = network.sizes
    grad_sq, sums, peaks = moments
    stats = np.empty((grad_sq.shape[0], len(STAT_FAMILIES), sizes.size))  # per member, one row per family
    mean = np.divide(sums, sizes, out=stats[:, 1])
    np.sqrt(grad_sq, out=stats[:, 0])  # grad_norm
    variance = grad_sq / sizes - mean * mean
    np.sqrt(np.maximum(variance, 0.0, out=variance), out=stats[:, 2])  # grad_std
    stats[:, 3] = peaks  # grad_max
    weight_norm = np.sqrt(weight_sq, out=stats[:, 4])
    np.divide(np.sqrt(update_sq), weight_norm, out=stats[:, 5])  # update_ratio; inf / nan where a tensor is all zeros: dropped below
    keys = _keys(network.param_names)
    out = []
    for values in stats.reshape(stats.shape[0], -1).tolist():
        figures = dict(zip(keys, values, strict=True))
        first, last = values[0], values[sizes.size - 2]  # grad_norm of dense_1.weight and of dense_L.weight
        if sizes.size > 2 and last > 0:
            figures["vanishing_ratio"] = first / last
        out.append(figures if all(map(math.isfinite, values)) else finite_only(figures))
    return out


@functools.lru_cache(maxsize=64)
def _dead_keys(names: tuple[str, ...], hinged: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
    """(layer index, metric key) of the ReLU-family layers, built once per network shape."""
    return tuple((i, f"dead_fraction/{names[i]}") for i in hinged)


def dead_fractions(network: Network, members: list[int], masks: list[dict[str, np.ndarray]] | None = None) -> list[dict[str, float]]:
    """For ReLU-family layers, per member asked for: the fraction of units whose pre-activation is <= 0
    on the whole batch. Given `masks` (a dict per member), each layer's boolean mask of those units
    goes into it by layer name (what the diagnoses read)."""
    keys = _dead_keys(network.names, network.hinged)
    if not keys:
        return [{} for _ in members]
    Zs, everyone = network.Z, len(members) == network.members
    out: list[dict[str, float]] = [{} for _ in members]
    for i, key in keys:
        Z = Zs[i] if everyone else Zs[i][members]
        if Z.shape[0] == 1:  # one member: its (n, units) block (a max and a count are exact, however taken)
            dead = (np.maximum.reduce(Z[0], axis=0) <= 0)[None]
            counts = [np.count_nonzero(dead)]
        else:
            dead = np.maximum.reduce(Z, axis=1) <= 0  # (R, units): never above zero on the batch
            counts = np.add.reduce(dead, axis=1, dtype=np.int64).tolist()
        for figures, count in zip(out, counts, strict=True):
            figures[key] = count / Z.shape[2]
        if masks is not None:
            for r, member_masks in enumerate(masks):
                member_masks[network.names[i]] = dead[r]
    return out


def saturated_masks(network: Network, k: int, layers: list[int], eps: float, bounds: list[tuple[float, float]]) -> dict[str, np.ndarray]:
    """Member k's units of the given (sigmoid or tanh) layers whose activation is within `eps` of a bound
    for every sample of the batch, a boolean mask per layer name."""
    out = {}
    for i, (low, high) in zip(layers, bounds, strict=True):
        A = network.A[i][k]
        out[network.names[i]] = (np.minimum.reduce(A, axis=0) >= high - eps) | (np.maximum.reduce(A, axis=0) <= low + eps)
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


def correct(loss_name: str, outputs: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, int]:
    """Each member's right predictions `(K,)` of `outputs (K, n, out)`, and how many were counted
    (the same for all): bce per output at threshold 0.5, cross_entropy by argmax."""
    if loss_name == "cross_entropy":
        hits, counted = outputs.argmax(axis=-1) == Y.argmax(axis=-1), outputs.shape[-2]
    else:
        hits, counted = np.equal(outputs > 0.5, Y > 0.5), outputs.shape[-2] * outputs.shape[-1]
    if hits.shape[0] == 1:  # one member: one count (a count is exact, however it is taken)
        return np.array([np.count_nonzero(hits)]), counted
    return np.add.reduce(hits.reshape(hits.shape[0], -1), axis=1, dtype=np.int64), counted


def accuracy(loss_name: str, outputs: np.ndarray, Y: np.ndarray) -> list[float] | None:
    """Each member's classification accuracy (None for mse)."""
    if loss_name == "mse":
        return None
    right, counted = correct(loss_name, outputs, Y)
    return (right / counted).tolist()


TOP_EIGENVALUES = 3  # the Hessian's largest eigenvalues a curvature step reports (dense Hessians only)
DENSE_MAX_PARAMS = 300  # engine/curvature.py builds the Hessian whole up to this many parameters


def metric_keys(spec: JobSpec, n_params: int) -> list[str]:
    """Every metric key a job of `spec` can record (those of a step that diverged aside), in a stable order.

    Mirrors what the trainer writes: `loss` at recorded steps; the per-tensor families and
    `vanishing_ratio` (more than one layer) unless `record.gradients` is `none`; `dead_fraction/<layer>`
    for ReLU-family layers; with `record.curvature`, `sharpness`, `sharpness_x_lr`, `hessian_trace` and
    `hessian_eig/<i>` (at its steps; the last only for networks of at most DENSE_MAX_PARAMS of the `n_params`
    parameters, whose Hessian is built whole); and at each epoch's end `train_loss`, `train_accuracy` (classification
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
    if spec.record.curvature is not None:
        keys += ["sharpness", "sharpness_x_lr", "hessian_trace"]
        if n_params <= DENSE_MAX_PARAMS:  # the dense Hessian: its top eigenvalues exactly
            keys += [f"hessian_eig/{i + 1}" for i in range(min(TOP_EIGENVALUES, n_params))]
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
    ("sharpness", "every `record.curvature.every` steps that are recorded, with `record.curvature`",
     "λmax, the loss's largest Hessian eigenvalue at the step's weights (before its update), on its batch or the training set"),
    ("sharpness_x_lr", "as above", "λmax · η: where it passes 2, gradient descent overshoots along the sharpest direction"),
    ("hessian_trace", "as above", "the Hessian's trace (exact up to 300 parameters, else Hutchinson's estimate)"),
    ("hessian_eig/<i>", "as above, networks of at most 300 parameters", "the i-th largest Hessian eigenvalue (i ≤ 3), exactly"),
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
    if family == "hessian_eig":
        return "hessian_eig/<i>"
    return f"{family}/<layer>" if family == "dead_fraction" else f"{family}/<tensor>"


def reference_table(rows: tuple[tuple[str, str, str], ...], first: str) -> str:
    lines = [f"| {first} | recorded | meaning |", "|---|---|---|"]
    return "\n".join(lines + [f"| `{a}` | {b} | {c} |" for a, b, c in rows])
