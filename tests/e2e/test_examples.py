"""Every shipped example runs with one command against a live server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize("name, expect", [
    ("walkthrough", ["0.5823", "0.4839", "0.76881"]),
    ("learning_rate", ["0.001", "10 |", "0.7303"]),
    ("batch_modes", ["full", "3000"]),
    ("vanishing_gradients", ["50 x sigmoid", "50 x ReLU"]),
    ("dead_relu", ["lr 0.5", "lr 1.0"]),
])
def test_example_runs(stack, name, expect):
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--url", stack.url], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for text in expect:
        assert text in done.stdout, done.stdout
