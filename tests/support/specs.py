"""Job specs the tests share: the post's single-sample example and small moons networks."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEED = json.loads((ROOT / "engine/examples/seed-trace.json").read_text())


def moons(**overrides) -> dict:
    """A 2-8-1 ReLU/sigmoid network on 100 moons samples, 5 epochs of batches of 10 (40 steps)."""
    spec = {"model": {"layers": [{"units": 8, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]},
            "loss": "bce", "data": {"builtin": "moons", "n_samples": 100, "validation_split": 0.2},
            "optimizer": {"name": "adam", "lr": 0.02}, "batch_size": 10, "epochs": 5, "seed": 1}
    spec.update(overrides)
    return spec


def small(**overrides) -> dict:
    """`moons` on 60 samples for 3 epochs: a sweep point that trains in milliseconds."""
    return moons(**{"epochs": 3, "data": {"builtin": "moons", "n_samples": 60, "validation_split": 0.2}, **overrides})


# Iris with dropout, Adam, batches of 16, 60 epochs (300 steps): randomness in every part of the
# state (batch order, dropout masks, optimizer moments), full gradients and traces at some steps.
IRIS = {"model": {"layers": [{"units": 6, "activation": "relu"}, {"units": 3, "activation": "softmax"}], "dropout": 0.1},
        "loss": "cross_entropy", "data": {"builtin": "iris", "validation_split": 0.2}, "optimizer": {"name": "adam", "lr": 0.01},
        "batch_size": 16, "epochs": 60, "seed": 5, "record": {"every": 1, "gradients": "full", "trace": [0, 250, 260]}}


def dead_relu(lr: float) -> dict:
    """examples/dead_relu.py's network: at lr 1.0 half of dense_1 dies by step 40 (a `dead_units`
    diagnosis), at 0.5 none does."""
    return {"model": {"layers": [{"units": 16, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}], "init": "he_normal"},
            "loss": "bce", "data": {"builtin": "moons", "n_samples": 200, "standardize": True},
            "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9}, "batch_size": 10, "epochs": 10, "seed": 7, "record": {"every": 20}}
