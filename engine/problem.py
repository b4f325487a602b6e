"""From a validated spec to the arrays and objects training needs, with every check that needs
the data (target shapes and ranges, batch size, explicit weight shapes, recording budget).

Everything here raises `SpecError` naming the field, so a bad job is refused before training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activations import make_activation
from .checkpoint_cadence import cadence, kept_bytes
from .datasets import BUILTIN_INPUTS, dataset_size, load_builtin
from .initializers import init_weights
from .losses import Loss, make_loss
from .network import Network
from .recording import metric_keys
from .spec import JobSpec, SpecError, parse_spec

# Independent random streams, so adding dropout never changes the data or the initial weights.
STREAM_DATA, STREAM_SPLIT, STREAM_INIT, STREAM_TRAIN = range(4)


@dataclass
class Problem:
    """Everything a trainer needs, derived deterministically from the spec."""

    spec: JobSpec
    X_train: np.ndarray
    Y_train: np.ndarray
    X_val: np.ndarray | None
    Y_val: np.ndarray | None
    network: Network
    loss: Loss
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    train_rng: np.random.Generator
    input_mean: np.ndarray | None = None  # standardisation statistics of the training part
    input_std: np.ndarray | None = None
    kept_every: int = 0  # steps between kept checkpoints (engine/checkpoint_cadence.py; 0: none kept)

    @property
    def n_params(self) -> int:
        return self.network.flat_params.shape[1]

    @property
    def sizes(self) -> Plan:
        """The job's sizes as its arrays have them (what `plan` computes from the spec)."""
        n_val = 0 if self.X_val is None else self.X_val.shape[0]
        return Plan(n_samples=self.X_train.shape[0] + n_val, n_inputs=self.X_train.shape[1], n_params=self.n_params,
                    total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch, batch_size=self.batch_size)


CURVATURE_MAX_SAMPLES = 10_000  # record.curvature.on = "train": each of its products is a pass over these samples


def streams(seed: int) -> list[np.random.Generator]:
    """The job's four random generators, derived from its seed."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


@dataclass
class Plan:
    """Sizes of a job, known from the spec alone (no data loaded, nothing allocated)."""

    n_samples: int
    n_inputs: int
    n_params: int
    total_steps: int
    steps_per_epoch: int
    batch_size: int


def plan(spec: JobSpec, n_samples: int | None = None) -> Plan:
    """How big a job is, so limits can be enforced before building anything. `n_samples` overrides
    the inline data's length (for callers that parsed a copy without the rows)."""
    data = spec.data
    if data.builtin is not None:
        n = dataset_size(data.builtin, data.n_samples)
        n_inputs = BUILTIN_INPUTS[data.builtin]
    elif data.dataset is not None:
        if data.rows is None or data.features is None:
            raise SpecError([("data.dataset", "the dataset's rows and features are set by the service when the job is stored")])
        n, n_inputs = data.rows, len(data.features)
    else:
        n, n_inputs = n_samples or len(data.X), len(data.X[0])
    n_params = _n_params(spec, n_inputs)
    n_train = n - round(n * data.validation_split) if data.validation_split else n
    batch = max(1, n_train if spec.batch_size == "full" else min(spec.batch_size, max(n_train, 1)))
    per_epoch = math.ceil(max(n_train, 1) / batch)
    total = spec.steps if spec.steps is not None else spec.epochs * per_epoch
    return Plan(n_samples=n, n_inputs=n_inputs, n_params=n_params, total_steps=total, steps_per_epoch=per_epoch, batch_size=batch)


def plan_document(document: dict) -> tuple[JobSpec, Plan]:
    """The spec and sizes of a job spec document, parsed from a copy without its inline rows and
    explicit weights: validating megabytes of numbers again only to learn the sizes would take seconds."""
    light, n_samples = dict(document), None
    data = document.get("data") or {}
    if data.get("X") is not None:
        n_samples = len(data["X"])
        light["data"] = {**data, "X": data["X"][:1], "y": data["y"][:1]}
    light["model"] = {k: v for k, v in document["model"].items() if k not in ("weights", "biases")}
    spec = parse_spec(light)
    return spec, plan(spec, n_samples)


def build_problem(spec: JobSpec | dict, raw: RawData | None = None) -> Problem:
    """Load data, check it against the spec, and build the network; raise `SpecError` if unfit.

    `raw`: the data already loaded by `load_data` for a spec with the same `data` (a sweep checks
    its points against one load instead of one per point)."""
    if not isinstance(spec, JobSpec):
        spec = parse_spec(spec)
    rngs = streams(spec.seed)
    dtype = np.dtype(spec.dtype)
    data_rng = rngs[STREAM_DATA]
    if raw is None:
        raw = load_data(spec, data_rng)
    else:
        data_rng.integers(2**62)  # the draw load_data makes, so every later stream is as if it had loaded
    X, Y = raw.X, _targets(spec, raw)
    X_train, Y_train, X_val, Y_val = _split(spec, X, Y, rngs[STREAM_SPLIT])
    mean = std = None
    if spec.data.standardize:
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        std[std == 0] = 1.0
        X_train = (X_train - mean) / std
        X_val = None if X_val is None else (X_val - mean) / std
    n_train = X_train.shape[0]
    batch_size = n_train if spec.batch_size == "full" else spec.batch_size
    if batch_size > n_train:
        raise SpecError([("batch_size", f"{batch_size} is larger than the {n_train} training samples")])
    curvature = spec.record.curvature
    if curvature is not None and curvature.on == "train" and n_train > CURVATURE_MAX_SAMPLES:
        raise SpecError([("record.curvature.on", f"the curvature on the training set is measured up to {CURVATURE_MAX_SAMPLES:,} "
                                                 f"samples; this one has {n_train:,}: measure it on the step's batch")])
    steps_per_epoch = math.ceil(n_train / batch_size)
    total_steps = spec.steps if spec.steps is not None else spec.epochs * steps_per_epoch
    network = _build_network(spec, X_train.shape[1], rngs[STREAM_INIT], dtype)
    kept_every = _check_record_budget(spec, batch_size, X_train.shape[1], total_steps, steps_per_epoch)

    def cast(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a, dtype=dtype)

    return Problem(
        spec=spec,
        X_train=cast(X_train),
        Y_train=cast(Y_train),
        X_val=cast(X_val),
        Y_val=cast(Y_val),
        network=network,
        loss=make_loss(spec.loss, spec.model.layers[-1].activation),
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        train_rng=rngs[STREAM_TRAIN],
        input_mean=mean,
        input_std=std,
        kept_every=kept_every,
    )


@dataclass(frozen=True)
class RawData:
    """Inputs and targets as given, before they are checked against a network: `y` is 1-D (labels or
    scalar targets) or 2-D (target rows); `field` is where they came from, for error messages."""

    X: np.ndarray
    y: np.ndarray
    field: str


def load_data(spec: JobSpec, rng: np.random.Generator | None = None) -> RawData:
    """The spec's data as arrays (a builtin set generated from the spec's data stream)."""
    data = spec.data
    if data.dataset is not None:
        raise SpecError([("data.dataset", "an uploaded dataset is read by the service: give its rows as `raw` (RawData)")])
    if data.builtin is not None:
        rng = rng if rng is not None else streams(spec.seed)[STREAM_DATA]
        X, labels = load_builtin(data.builtin, data.n_samples, data.noise, int(rng.integers(2**62)))
        return RawData(X, np.asarray(labels, dtype=np.float64), "data.builtin")
    rows = [isinstance(v, list) for v in data.y]
    if any(rows) and not all(rows):
        raise SpecError([("data.y", "mix of scalar targets and target rows")])
    if all(rows) and len({len(v) for v in data.y}) > 1:
        raise SpecError([("data.y", f"target rows have {sorted({len(v) for v in data.y})} values; all must have as many")])
    return RawData(np.array(data.X, dtype=np.float64), np.array(data.y, dtype=np.float64), "data.y")


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _targets(spec: JobSpec, raw: RawData) -> np.ndarray:
    """Targets shaped like the network's output `(n, units)`; class labels become one-hot."""
    units = spec.model.layers[-1].units
    out_field = f"model.layers[{len(spec.model.layers) - 1}].units"
    Y, field, n = raw.y, raw.field, raw.X.shape[0]
    if Y.ndim == 2 and Y.shape[1] != units:
        raise SpecError([(field, f"target rows have [{Y.shape[1]}] values, the output layer has {units} units")])
    if spec.loss == "cross_entropy":
        if units < 2:
            raise SpecError([(out_field, "cross_entropy needs at least 2 output units")])
        if Y.ndim == 1:
            bad = np.flatnonzero((np.round(Y) != Y) | (Y < 0) | (units <= Y))
            if bad.size:
                i = int(bad[0])
                raise SpecError([(f"{field}[{i}]" if field == "data.y" else field,
                                  f"class labels must be integers in [0, {units}) for {units} output units, got {_number(Y[i])!r}")])
            return np.eye(units)[Y.astype(np.int64)]
        if (Y < 0).any() or not np.allclose(Y.sum(axis=1), 1.0, atol=1e-6):
            raise SpecError([(field, "cross_entropy target rows must be non-negative and sum to 1 (one-hot)")])
        return Y
    if Y.ndim == 1:
        if units != 1:
            raise SpecError([(field, f"scalar targets need 1 output unit, the output layer has {units}; give rows of {units} values")])
        Y = Y.reshape(n, 1)
    if spec.loss == "bce" and ((Y < 0) | (Y > 1)).any():
        i = int(np.flatnonzero(((Y < 0) | (Y > 1)).any(axis=1))[0])
        shown = _number(raw.y[i]) if raw.y.ndim == 1 else [_number(v) for v in raw.y[i]]
        raise SpecError([(f"{field}[{i}]" if field == "data.y" else field, f"bce targets must lie in [0, 1], got {shown!r}")])
    return Y


def _split(spec: JobSpec, X: np.ndarray, Y: np.ndarray, rng: np.random.Generator):
    fraction = spec.data.validation_split
    if fraction == 0:
        return X, Y, None, None
    n = X.shape[0]
    n_val = round(n * fraction)
    if n_val < 1 or n_val >= n:
        raise SpecError([("data.validation_split", f"{fraction} of {n} samples leaves {n - n_val} to train and {n_val} "
                          "to validate; both need at least 1")])
    order = rng.permutation(n)
    train, val = order[: n - n_val], order[n - n_val:]
    return X[train], Y[train], X[val], Y[val]


def network_from_model(spec: JobSpec, model: dict) -> Network:
    """A network with the given trained weights (as in a result's `model`), for prediction."""
    return Network([np.array(W, dtype=spec.dtype) for W in model["weights"]], [np.array(b, dtype=spec.dtype) for b in model["biases"]],
                   [make_activation(layer.activation, layer.alpha) for layer in spec.model.layers])


def _build_network(spec: JobSpec, n_inputs: int, rng: np.random.Generator, dtype: np.dtype) -> Network:
    """The job's network (one member) with its initial weights: the spec's, or drawn from its init stream."""
    weights, biases = [], []
    fan_in = n_inputs
    for i, layer_spec in enumerate(spec.model.layers):
        shape = (layer_spec.units, fan_in)
        if spec.model.weights is not None:
            W = np.array(spec.model.weights[i], dtype=np.float64)
            if W.shape != shape:
                got = "×".join(map(str, W.shape)) if W.ndim == 2 else f"ragged rows of {sorted({len(r) for r in spec.model.weights[i]})}"
                raise SpecError([(f"model.weights[{i}]", f"expected {shape[0]}×{shape[1]} (out × in), got {got}")])
            b = np.array(spec.model.biases[i], dtype=np.float64)
            if b.shape != (layer_spec.units,):
                raise SpecError([(f"model.biases[{i}]", f"expected {layer_spec.units} values, got {b.size}")])
            W, b = W.astype(dtype), b.astype(dtype)
        else:
            W = init_weights(spec.model.init, layer_spec.units, fan_in, rng, dtype)
            b = np.zeros(layer_spec.units, dtype=dtype)
        weights.append(W)
        biases.append(b)
        fan_in = layer_spec.units
    return Network(weights, biases, [make_activation(layer.activation, layer.alpha) for layer in spec.model.layers], dropout=spec.model.dropout)


def traced_steps(spec: JobSpec) -> set[int] | bool:
    """Steps whose full trace is recorded: True means every recorded step."""
    trace = spec.record.trace
    return set(trace) if isinstance(trace, list) else trace


def is_recorded(step: int, every: int, total_steps: int) -> bool:
    """Steps that report metrics: every `every`-th, and always the last."""
    return step % every == 0 or step == total_steps - 1


POINT_BYTES = 12  # a stored metric point: its step ('<i4') and value ('<f8')
ARRAY_ENTRY_BYTES = 400  # what an .npz adds per array (zip and .npy headers)
TRACE_NUMBER_BYTES = 24  # a float64 as JSON text, at most
TRACE_STEP_BYTES = 4096  # a trace's keys and structure


def recording_bytes(spec: JobSpec, n_inputs: int, batch: int, total_steps: int, steps_per_epoch: int) -> int:
    """At most what a job records, in bytes: its metric points, full gradients, traces and kept checkpoints
    (the budget `record.max_bytes` bounds, and a server's quotas count)."""
    rest, kept, _ = _budget(spec, n_inputs, batch, total_steps, steps_per_epoch)
    return rest + kept


def checkpoint_cadence(spec: JobSpec, n_inputs: int, batch: int, total_steps: int, steps_per_epoch: int) -> int:
    """Steps between the job's kept checkpoints (engine/checkpoint_cadence.py), with what its recording leaves of its budget."""
    return _budget(spec, n_inputs, batch, total_steps, steps_per_epoch)[2]


def _budget(spec: JobSpec, n_inputs: int, batch: int, total_steps: int, steps_per_epoch: int) -> tuple[int, int, int]:
    """(bytes of points, gradients and traces; bytes of kept checkpoints; the checkpoint cadence chosen with what the
    first leaves of the budget)."""
    rest = _recorded_bytes(spec, n_inputs, batch, total_steps, steps_per_epoch)
    n_params, n_train = _n_params(spec, n_inputs), batch * steps_per_epoch
    every = cadence(spec, n_params, batch, total_steps, n_train, spec.record.max_bytes - rest)
    return rest, kept_bytes(spec, every, n_params, total_steps, n_train), every


def _n_params(spec: JobSpec, n_inputs: int) -> int:
    widths = [n_inputs] + [layer.units for layer in spec.model.layers]
    return sum(widths[i] * widths[i + 1] + widths[i + 1] for i in range(len(widths) - 1))


def _recorded_bytes(spec: JobSpec, n_inputs: int, batch: int, total_steps: int, steps_per_epoch: int) -> int:
    """Metric points, full gradients and traces, at most."""
    rec = spec.record
    recorded = len(range(0, total_steps, rec.every)) + (0 if (total_steps - 1) % rec.every == 0 else 1)
    itemsize = np.dtype(spec.dtype).itemsize
    widths = [n_inputs] + [layer.units for layer in spec.model.layers]
    n_params = _n_params(spec, n_inputs)
    units = sum(widths[1:])
    keys = metric_keys(spec, n_params)
    epoch_keys = sum(1 for key in keys if key.startswith(("train_", "val_")))
    epochs = math.ceil(total_steps / max(steps_per_epoch, 1))
    needed = (recorded * (len(keys) - epoch_keys) + epochs * epoch_keys) * POINT_BYTES
    if rec.gradients == "full":  # an .npz per step: the arrays and a zip entry per tensor
        needed += recorded * (n_params * itemsize + ARRAY_ENTRY_BYTES * 2 * len(spec.model.layers))
    if rec.trace:  # JSON per step (compressed, so this bounds it): every number as text, whatever the dtype
        n_traced = recorded if rec.trace is True else len(set(rec.trace))
        numbers = 3 * units * batch + 3 * n_params + batch * (n_inputs + widths[-1])
        needed += n_traced * (numbers * TRACE_NUMBER_BYTES + TRACE_STEP_BYTES)
    return needed


def _check_record_budget(spec: JobSpec, batch: int, n_inputs: int, total_steps: int, steps_per_epoch: int) -> int:
    """Refuse what would pass the recording budget; the checkpoint cadence it leaves room for."""
    rec = spec.record
    if isinstance(rec.trace, list):
        for i, step in enumerate(rec.trace):
            if step >= total_steps:
                raise SpecError([(f"record.trace[{i}]", f"step {step} is past the last step ({total_steps - 1})")])
    rest, kept, every = _budget(spec, n_inputs, batch, total_steps, steps_per_epoch)
    needed = rest + kept
    if needed > rec.max_bytes:
        field = "record.checkpoints" if rec.checkpoints and rest <= rec.max_bytes else "record.max_bytes"
        raise SpecError([(field, f"recording (metric points, full gradients, traces, kept checkpoints) needs about {needed:,} bytes, "
                          f"over the budget of {rec.max_bytes:,}; record fewer steps (record.every, record.trace), fewer "
                          "gradients (record.gradients), keep fewer checkpoints (record.checkpoints) or raise record.max_bytes "
                          "within the server's MAX_RECORD_BYTES")])
    return every
