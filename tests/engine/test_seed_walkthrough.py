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
    assert [close(a, p) for a, p in zip(hidden["A"][0], ["0.33", "0.13"])] == [True, True]
    assert close(out["Z"][0][0], "0.146")
    assert close(out["A"][0][0], "0.536")


def test_loss_is_exact_not_the_posts_0767(step):
    assert step.loss == pytest.approx(-math.log(1 - 1 / (1 + math.exp(-0.146))), rel=1e-12)
    assert round(step.loss, 5) == 0.76881
    assert not close(step.loss, "0.767")


def test_backward_pass_matches_post(step):
    hidden, out = step.trace["layers"]
    assert close(out["delta"][0][0], "0.536")
    assert all(close(v, p) for v, p in zip(out["dW"][0], ["0.177", "0.070"]))
    assert close(out["db"][0], "0.536")
    assert all(close(v, p) for v, p in zip(hidden["delta"][0], ["0.322", "-0.214"]))
    expected_dW1 = [["0.161", "0.032"], ["-0.107", "-0.021"]]
    assert all(close(v, p) for row, prow in zip(hidden["dW"], expected_dW1) for v, p in zip(row, prow))


def test_update_matches_post(step):
    hidden, out = step.trace["layers"]
    assert all(close(v, p) for v, p in zip(out["W_new"][0], ["0.5823", "-0.4070"]))
    assert close(out["b_new"][0], "-0.0536")
    expected_W1 = [["0.4839", "-0.2032"], ["0.3107", "0.8021"]]
    assert all(close(v, p) for row, prow in zip(hidden["W_new"], expected_W1) for v, p in zip(row, prow))
