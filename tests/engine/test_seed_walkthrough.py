"""The post's single-sample walkthrough, to within one unit of its last printed digit.

The post rounds as it goes (y_hat to 0.536 before reusing it); its printed loss 0.767 is wrong:
-ln(1 - 0.53644) = 0.76881, which PyTorch confirms (tests/engine/conformance/seed-single.json).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.training import Trainer

SPEC = json.loads((Path(__file__).parents[2] / "engine" / "examples" / "seed-trace.json").read_text())


def close(value: float, printed: str) -> bool:
    """Within one unit of the printed value's last digit."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(value - float(printed)) <= 10 ** -decimals + 1e-12


@pytest.fixture(scope="module")
def step():
    return next(iter(Trainer(SPEC)))


def test_forward_pass_matches_post(step):
    hidden, out = step.trace["layers"]
    assert [close(a, p) for a, p in zip(hidden["A"][0], ["0.33", "0.13"], strict=True)] == [True, True]
    assert close(out["Z"][0][0], "0.146")
    assert close(out["A"][0][0], "0.536")


def test_loss_is_exact_not_the_posts_0767(step):
    assert step.loss == pytest.approx(-math.log(1 - 1 / (1 + math.exp(-0.146))), rel=1e-12)
    assert round(step.loss, 5) == 0.76881
    assert not close(step.loss, "0.767")


def test_backward_pass_matches_post(step):
    hidden, out = step.trace["layers"]
    assert close(out["delta"][0][0], "0.536")
    assert all(close(v, p) for v, p in zip(out["dW"][0], ["0.177", "0.070"], strict=True))
    assert close(out["db"][0], "0.536")
    assert all(close(v, p) for v, p in zip(hidden["delta"][0], ["0.322", "-0.214"], strict=True))
    expected_dW1 = [["0.161", "0.032"], ["-0.107", "-0.021"]]
    assert all(close(v, p) for row, prow in zip(hidden["dW"], expected_dW1, strict=True) for v, p in zip(row, prow, strict=True))


def test_update_matches_post(step):
    hidden, out = step.trace["layers"]
    assert all(close(v, p) for v, p in zip(out["W_new"][0], ["0.5823", "-0.4070"], strict=True))
    assert close(out["b_new"][0], "-0.0536")
    expected_W1 = [["0.4839", "-0.2032"], ["0.3107", "0.8021"]]
    assert all(close(v, p) for row, prow in zip(hidden["W_new"], expected_W1, strict=True) for v, p in zip(row, prow, strict=True))


POST_NET = {"layers": [{"units": 2, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
            "weights": [[[0.5, -0.2], [0.3, 0.8]], [[0.6, -0.4]]], "biases": [[0.1, -0.1], [0.0]]}


def test_batch_update_on_the_five_samples_the_post_transposes_dW1():
    """The post's batch code prints W1 = [[0.503, -0.202], [0.305, 0.7967]]: it subtracts X.T @ delta,
    the transpose of dL/dW1, so its off-diagonal entries are swapped. PyTorch agrees with us."""
    from engine.training import run

    from . import torch_reference as ref

    spec = {"model": POST_NET, "loss": "bce", "data": {"X": [[0.5, 0.1], [0.9, 0.8], [0.2, 0.3], [0.7, 0.6], [0.4, 0.2]],
                                                       "y": [0, 1, 0, 1, 0]},
            "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": "full", "steps": 1, "shuffle": False}
    result = run(spec)
    W1, W2 = result["model"]["weights"]
    assert [round(w, 4) for w in W2[0]] == [0.5998, -0.3908]  # as printed by the post
    assert [[round(w, 4) for w in row] for row in W1] == [[0.503, -0.195], [0.298, 0.7967]]
    _, torch_params = ref.train(spec)
    assert ref.relative_error(W1, torch_params[0]) < 1e-12


def test_learning_rate_experiment_loss_before_is_exact():
    """The post's table starts every run at loss 0.7282; the exact BCE of its network on its five samples
    is 0.73029 (and its code never updates b1). What the engine reports is what PyTorch computes."""
    from engine.training import run

    from . import torch_reference as ref

    for lr in (0.001, 0.01, 0.1, 1.0, 10.0):
        spec = {"model": POST_NET, "loss": "bce", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": lr},
                "batch_size": "full", "steps": 2, "shuffle": False}
        losses = [v for _, v in run(spec)["metrics"]["loss"]]
        torch_spec = {**spec, "data": {"X": [[0.5, 0.1], [0.9, 0.8], [0.2, 0.3], [0.7, 0.6], [0.4, 0.2]], "y": [0, 1, 0, 1, 0]}}
        assert ref.relative_error(losses, ref.train(torch_spec)[0]) < 1e-12
        assert round(losses[0], 5) == 0.73029
