"""`python -m engine run`: JSON result on stdout, field-named errors on stderr with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def engine(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_run_spec_file_prints_json_result(tmp_path):
    case = json.loads((ROOT / "tests/engine/conformance/seed-single.json").read_text())
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(case["spec"]))
    done = engine("run", str(path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert result["model"] == case["expected"]["model"]
    assert result["metrics"]["loss"] == case["expected"]["loss"]


def test_seed_trace_example_prints_the_posts_table():
    done = engine("run", "--example", "seed-trace", "--table")
    assert done.returncode == 0, done.stderr
    assert "loss 0.76881" in done.stdout
    assert "∂L/∂W2₁   δ₂ × a1₁" in done.stdout and "0.5364 × 0.33" in done.stdout
    assert "W1₂₁" in done.stdout and "0.3107" in done.stdout
    as_json = json.loads(engine("run", "--example", "seed-trace").stdout)
    # the bits as the engine computes them (BLAS products over transposed views of W and δ: changed with the one-engine issue)
    assert as_json["trace"][0]["layers"][1]["dW"] == [[0.17702364957441255, 0.06973658922628374]]
    assert len(as_json["gradients"]) == 1


def test_bad_spec_exits_2_with_field_named_error():
    spec = {"model": {"layers": [{"units": 2, "activation": "softmax"}, {"units": 1, "activation": "sigmoid"}]},
            "loss": "bce", "data": {"builtin": "seed"}}
    done = engine("run", "-", stdin=json.dumps(spec))
    assert done.returncode == 2
    assert "model.layers[0].activation: 'softmax' is only allowed on the output layer" in done.stderr
    assert done.stdout == ""


def test_unreadable_input_exits_2():
    assert engine("run", "-", stdin="{not json").returncode == 2
    missing = engine("run", "/nonexistent/spec.json")
    assert missing.returncode == 2 and "No such file" in missing.stderr


def test_diverged_run_is_a_result_not_an_error():
    spec = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]},
            "loss": "mse", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 1e6}, "steps": 60, "seed": 1}
    done = engine("run", "-", stdin=json.dumps(spec))
    assert done.returncode == 0
    result = json.loads(done.stdout, parse_constant=lambda name: pytest.fail(f"{name} in the output"))
    assert result["status"] == "diverged" and "step" in result["error"]
