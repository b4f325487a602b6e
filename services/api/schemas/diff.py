"""/jobs/{a}/diff/{b}: where two runs of one architecture part."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .common import Out, Query


class DiffQuery(Query):
    tolerance: float = Field(default=1e-9, ge=0, allow_inf_nan=False, description="relative difference that counts as parting")


class FirstDifference(Out):
    step: int
    key: str
    a: float
    b: float
    relative_difference: float


class FinalWeights(Out):
    max_abs_difference: float
    per_layer: list[float]


class SpecChange(Out):
    a: Any = Field(description="job a's value (null: not set)")
    b: Any


class Branch(Out):
    job: int = Field(description="the job whose run both are for their first `step` steps")
    step: int = Field(description="the steps they share: from here on each trains with its own settings")


class Diff(Out):
    a: int
    b: int
    tolerance: float
    spec_differences: dict[str, SpecChange] = Field(description="the specs' fields that differ, by param name (`lr`, `layers.0.units`; "
                                                    "inline data and explicit weights are compared as a whole, under `data` and `weights`)")
    architecture: list[Any] = Field(description="input width, then [units, activation] per layer")
    keys_compared: list[str]
    steps_compared: int
    first_difference: FirstDifference | None
    branch: Branch | None = Field(default=None, description="where they branch when one is a fork of the other (or both of one "
                                  "ancestor): before `step` they are one run, bit for bit")
    identical: bool
    final_weights: FinalWeights | None = None
