"""Real data shipped inside scikit-learn, learned to high validation accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from engine.training import run


def two_hidden(dataset: str, classes: int) -> dict:
    out = {"units": 1, "activation": "sigmoid"} if classes == 2 else {"units": classes, "activation": "softmax"}
    return {
        "model": {"layers": [{"units": 64, "activation": "relu"}, {"units": 32, "activation": "relu"}, out]},
        "loss": "bce" if classes == 2 else "cross_entropy",
        "data": {"builtin": dataset, "validation_split": 0.2, "standardize": True},
        "optimizer": {"name": "adam", "lr": 0.001},
        "batch_size": 32, "epochs": 30, "seed": 1, "record": {"every": 50},
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("dataset", "classes"), [("breast_cancer", 2), ("digits", 10)])
def test_real_data_reaches_95_percent_validation_accuracy(dataset, classes):
    result = run(two_hidden(dataset, classes))
    assert result["status"] == "succeeded"
    assert result["summary"]["final_val_accuracy"] >= 0.95


def test_a_builtin_set_drawn_again_is_the_same_and_the_callers_own():
    """A sweep's jobs of one seed draw their set once per process (kept); each caller gets its own arrays."""
    from engine.datasets import load_builtin

    X, y = load_builtin("moons", 200, 0.1, 7)
    X[:] = 0.0
    y[:] = 5
    again, labels = load_builtin("moons", 200, 0.1, 7)
    assert again.any() and set(labels.tolist()) == {0, 1}
    assert not np.array_equal(again, load_builtin("moons", 200, 0.1, 8)[0])
