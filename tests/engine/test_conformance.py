"""The shared conformance cases: specs with results computed independently by PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.training import run

from .torch_reference import relative_error

CASES = sorted((Path(__file__).parent / "conformance").glob("*.json"))


def test_conformance_cases_are_present():
    assert len(CASES) >= 25


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_conformance_case(path):
    case = json.loads(path.read_text())
    tolerance = case["tolerance"]["relative"]
    result = run(case["spec"])
    expected = case["expected"]
    assert result["status"] == "succeeded"
    assert [s for s, _ in result["metrics"]["loss"]] == [s for s, _ in expected["loss"]]
    assert relative_error([v for _, v in result["metrics"]["loss"]], [v for _, v in expected["loss"]]) <= tolerance
    for kind in ("weights", "biases"):
        for i, (mine, theirs) in enumerate(zip(result["model"][kind], expected["model"][kind], strict=True)):
            assert relative_error(mine, theirs) <= tolerance, f"{kind}[{i}]"
