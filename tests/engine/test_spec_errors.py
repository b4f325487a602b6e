"""Every bad spec is refused before training, with an error naming the field and the reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.problem import build_problem
from engine.spec import SpecError, parse_spec

BASE = json.loads((Path(__file__).parent / "conformance" / "seed-single.json").read_text())["spec"]


def mutate(path: str, value) -> dict:
    """A copy of the base spec with `path` (dotted, [i] for lists) set to value; `...` deletes it."""
    spec = copy.deepcopy(BASE)
    parts = path.replace("[", ".").replace("]", "").split(".")
    target = spec
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return spec


BAD = [
    # (case id, spec, field, words in the reason)
    ("softmax hidden", mutate("model.layers[0].activation", "softmax"), "model.layers[0].activation", "only allowed on the output layer"),
    ("unknown activation", mutate("model.layers[1].activation", "swish"), "model.layers[1].activation", "not one of the allowed"),
    ("unknown loss", mutate("loss", "hinge"), "loss", "not one of the allowed"),
    ("unknown optimizer", mutate("optimizer.name", "lbfgs"), "optimizer.name", "not one of the allowed"),
    ("unknown init", mutate("model.init", "orthogonal"), "model.init", "not one of the allowed"),
    ("unknown field", mutate("learning_rate", 0.1), "learning_rate", "unknown field"),
    ("zero lr", mutate("optimizer.lr", 0), "optimizer.lr", "must be > 0"),
    ("negative lr", mutate("optimizer.lr", -0.5), "optimizer.lr", "must be > 0"),
    ("batch 0", mutate("batch_size", 0), "batch_size", "positive integer"),
    ("batch text", mutate("batch_size", "half"), "batch_size", "positive integer or 'full'"),
    ("batch too big", mutate("batch_size", 2), "batch_size", "larger than the 1 training samples"),
    ("X/y mismatch", mutate("data.y", [0, 1]), "data.y", "2 targets for 1 samples"),
    ("ragged X", {**BASE, "data": {"X": [[0.5, 0.1], [0.2]], "y": [0, 1]}}, "data.X[1]", "row has 1 values"),
    ("nan in X", mutate("data.X", [[float("nan"), 0.1]]), "data.X[0][0]", "finite"),
    ("inf in y", mutate("data.y", [float("inf")]), "data.y[0]", "finite"),
    ("bce label out of range", mutate("data.y", [2]), "data.y[0]", "bce targets must lie in [0, 1]"),
    ("weights shape", mutate("model.weights[1]", [[0.6], [-0.4]]), "model.weights[1]", "expected 1×2 (out × in), got 2×1"),
    ("biases length", mutate("model.biases[0]", [0.1]), "model.biases[0]", "expected 2 values"),
    ("weights count", mutate("model.weights", [[[0.5, -0.2], [0.3, 0.8]]]), "model.weights", "1 entries for 2 layers"),
    ("weights without biases", mutate("model.biases", ...), "model.biases", "together"),
    ("alpha on relu", mutate("model.layers[0].alpha", 0.1), "model.layers[0].alpha", "only leaky_relu and elu"),
    ("nesterov on adam", mutate("optimizer", {"name": "adam", "nesterov": True}), "optimizer.nesterov", "not an option of 'adam'"),
    ("nesterov without momentum", mutate("optimizer", {"name": "sgd", "nesterov": True}), "optimizer.nesterov", "momentum > 0"),
    ("steps and epochs", mutate("epochs", 3), "steps", "not both"),
    ("zero steps", mutate("steps", 0), "steps", "greater than or equal to 1"),
    ("dropout 1", mutate("model.dropout", 1.0), "model.dropout", "less than 1"),
    ("trace past the end", mutate("record.trace", [0, 5]), "record.trace[1]", "past the last step"),
    ("record budget", mutate("record", {"gradients": "full", "max_bytes": 10}), "record.max_bytes", "over the budget"),
    ("unknown dtype", mutate("dtype", "float16"), "dtype", "not one of the allowed"),
    ("empty layers", mutate("model.layers", []), "model.layers", "at least 1"),
    ("zero units", mutate("model.layers[0].units", 0), "model.layers[0].units", "greater than or equal to 1"),
    ("no data", mutate("data", {}), "data.X", "give inline X and y, a builtin dataset, or an uploaded dataset"),
    ("unknown dataset", mutate("data", {"builtin": "mnist"}), "data.builtin", "not one of the allowed"),
    ("both data sources", mutate("data.builtin", "xor"), "data.builtin", "not X and builtin"),
    ("validation leaves nothing", mutate("data.validation_split", 0.5), "data.validation_split", "both need at least 1"),
    ("step schedule without size", mutate("optimizer.schedule", {"name": "step"}), "optimizer.schedule.step_size", "required"),
]

CE_BASE = mutate("loss", "cross_entropy")
BAD += [
    ("ce one output", CE_BASE, "model.layers[1].units", "at least 2 output units"),
    ("ce label too big", {**mutate("model", {"layers": [{"units": 3, "activation": "softmax"}]}), "loss": "cross_entropy",
                          "data": {"X": [[0.1, 0.2], [0.3, 0.4]], "y": [0, 3]}}, "data.y[1]", "integers in [0, 3)"),
    ("ce fractional label", {**mutate("model", {"layers": [{"units": 3, "activation": "softmax"}]}), "loss": "cross_entropy",
                             "data": {"X": [[0.1, 0.2]], "y": [1.5]}}, "data.y[0]", "integers in [0, 3)"),
    ("ce one-hot not summing to 1", {**mutate("model", {"layers": [{"units": 2, "activation": "softmax"}]}), "loss": "cross_entropy",
                                     "data": {"X": [[0.1, 0.2]], "y": [[1, 1]]}}, "data.y", "sum to 1"),
    ("mse target width", {**mutate("model", {"layers": [{"units": 2, "activation": "linear"}]}), "loss": "mse",
                          "data": {"X": [[0.1, 0.2]], "y": [0.5]}}, "data.y", "scalar targets need 1 output unit"),
    ("target rows wrong width", mutate("data.y", [[0.0, 1.0]]), "data.y", "target rows have [2] values"),
    ("iris with bce", {**mutate("data", {"builtin": "iris"}), "steps": None}, "data.builtin", "bce targets must lie in [0, 1]"),
]


@pytest.mark.parametrize(("spec", "field", "words"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_spec_is_refused_with_field_and_reason(spec, field, words):
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(SpecError) as info:
        build_problem(spec)
    fields = [f for f, _ in info.value.errors]
    assert field in fields, info.value.errors
    reason = dict(info.value.errors)[field]
    assert words in reason, info.value.errors
    assert str(info.value).startswith(f"{info.value.errors[0][0]}: ")


def test_non_object_spec_is_refused():
    with pytest.raises(SpecError, match="JSON object"):
        parse_spec([1, 2])


def test_defaults_follow_pytorch():
    spec = parse_spec({"model": {"layers": [{"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
                       "data": {"builtin": "xor"}, "optimizer": {"name": "adamw"}})
    assert spec.optimizer.lr == 1e-3 and spec.optimizer.weight_decay == 1e-2 and spec.optimizer.betas == [0.9, 0.999]
    assert spec.epochs == 1 and spec.batch_size == "full" and spec.dtype == "float64"
    assert spec.record.gradients == "summary" and spec.record.trace is False
    leaky = parse_spec({**BASE, "model": {"layers": [{"units": 2, "activation": "leaky_relu"}, {"units": 1, "activation": "sigmoid"}]}})
    assert leaky.model.layers[0].alpha == 0.01
