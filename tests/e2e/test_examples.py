"""Every shipped example runs with one command against a live server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize(("name", "expect"), [
    ("walkthrough", ["0.5823", "0.4839", "0.76881"]),
    ("learning_rate", ["0.001", "10 |", "0.7303", "worse than it began"]),
    ("batch_modes", ["full", "3000"]),
    ("vanishing_gradients", ["50 x sigmoid", "50 x ReLU"]),
    ("dead_relu", ["lr 0.5", "lr 1.0", "no diagnosis", "dead_units: 8 of 16 units of dense_1 (", "have been dead since step 40"]),
])
def test_example_runs(stack, name, expect):
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--url", stack.url], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for text in expect:
        assert text in done.stdout, done.stdout


def test_learning_rate_judges_each_rate_by_where_it_ended(stack):
    done = subprocess.run([sys.executable, str(EXAMPLES / "learning_rate.py"), "--url", stack.url], capture_output=True, text=True,
                          timeout=300)
    for line in done.stdout.splitlines()[1:]:
        _lr, before, _one, hundred, verdict = (part.strip() for part in line.split("|"))
        assert verdict.startswith("↓") == (float(hundred) < float(before)), line


def test_the_sample_sweep_file_is_a_valid_sweep(stack):
    import yaml

    body = yaml.safe_load((EXAMPLES / "sweep.yaml").read_text())
    with stack.client() as api:
        sweep = api.post("/api/v1/sweeps", json={**body, "experiment": f"sample-{stack.port}"})
        assert sweep.status_code == 202, sweep.text
        assert sweep.json()["progress"]["planned_jobs"] == 30
        api.post(f"/api/v1/sweeps/{sweep.json()['id']}/cancel")
