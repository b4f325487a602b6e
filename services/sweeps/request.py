"""The sweep as submitted: its search space, strategy, seeds and objective, and the job spec of
each point (the base spec with the point's values set at their dotted paths)."""

from __future__ import annotations

import copy
import itertools
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.spec import SEED_MAX, SpecError, errors_from_validation

from ..time_limits import TimeLimitsRequest

PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LogUniform(_Strict):
    log_uniform: tuple[float, float]


class Uniform(_Strict):
    uniform: tuple[float, float]


class IntRange(_Strict):
    int: tuple[int, int]


class Choice(_Strict):
    choice: list[Any] = Field(min_length=1)


Dimension = list[Any] | LogUniform | Uniform | IntRange | Choice


class Objective(_Strict):
    metric: str = "val_loss"
    goal: Literal["minimize", "maximize"] = "minimize"


class EarlyStop(_Strict):
    rule: Literal["median", "asha"]
    grace_steps: int = Field(default=0, ge=0)


class SweepRequest(_Strict):
    name: str | None = Field(default=None, max_length=200)
    experiment: str = Field(default="default", min_length=1, max_length=200)
    base: dict[str, Any]
    strategy: Literal["grid", "random", "tpe"] = "grid"
    space: dict[str, Dimension] = Field(min_length=1)
    trials: int | None = Field(default=None, ge=1)
    seeds: int = Field(default=1, ge=1, le=100)
    objective: Objective = Field(default_factory=Objective)
    max_parallel: int = Field(default=4, ge=1, le=1000)
    early_stop: EarlyStop | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    time_limits: TimeLimitsRequest | None = None  # for each of its jobs

    @model_validator(mode="after")
    def _fits_strategy(self) -> SweepRequest:
        for path, dim in self.space.items():
            if self.strategy == "grid" and not isinstance(dim, list):
                raise ValueError(f"space.{path}: grid sweeps take lists of values")
            if isinstance(dim, list) and not dim:
                raise ValueError(f"space.{path}: empty list")
            for bounds in (getattr(dim, "log_uniform", None), getattr(dim, "uniform", None), getattr(dim, "int", None)):
                if bounds is not None and not bounds[0] < bounds[1]:
                    raise ValueError(f"space.{path}: the low bound must be below the high one")
            if isinstance(dim, LogUniform) and dim.log_uniform[0] <= 0:
                raise ValueError(f"space.{path}: log_uniform bounds must be > 0")
        if self.strategy != "grid" and self.trials is None:
            raise ValueError("trials: required by random and tpe sweeps")
        return self

    @property
    def n_trials(self) -> int:
        if self.strategy == "grid":
            return math.prod(len(v) for v in self.space.values())
        return self.trials

    @property
    def base_seed(self) -> int:
        seed = self.base.get("seed", 0)
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


def parse_request(body: Any) -> SweepRequest:
    if not isinstance(body, dict):
        raise SpecError([("", "the sweep must be a JSON object")])
    try:
        request = SweepRequest.model_validate(body)
    except ValidationError as exc:
        raise SpecError(errors_from_validation(exc)) from None
    if request.base_seed + request.seeds - 1 > SEED_MAX:
        last = request.base_seed + request.seeds - 1
        raise SpecError([("seeds", f"seeds {request.base_seed} .. {last} go past the largest seed ({SEED_MAX})")])
    return request


def set_path(spec: dict, path: str, value: Any) -> dict:
    """A copy of `spec` with the field at `path` (`optimizer.lr`, `model.layers[0].units`) set."""
    out = copy.deepcopy(spec)
    target: Any = out
    steps: list[Any] = []
    for part in path.split("."):
        match = PATH_PART.fullmatch(part)
        if match is None:
            raise SpecError([(f"space.{path}", f"{part!r} is not a field name")])
        steps.append(match.group(1))
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    for step in steps[:-1]:
        try:
            target = target[step] if isinstance(step, int) else target.setdefault(step, {})
        except (IndexError, KeyError, TypeError, AttributeError):
            raise SpecError([(f"space.{path}", f"the base spec has no {step!r} here")]) from None
    last = steps[-1]
    try:
        target[last] = value
    except (IndexError, TypeError):
        raise SpecError([(f"space.{path}", f"the base spec has no {last!r} here")]) from None
    return out


def corner_points(request: SweepRequest) -> list[dict[str, Any]]:
    """Points checked before anything is queued: the whole grid, or each dimension's bounds and choices."""
    if request.strategy == "grid":
        keys = list(request.space)
        return [dict(zip(keys, combo)) for combo in itertools.product(*request.space.values())]
    points = []
    for path, dim in request.space.items():
        values = dim if isinstance(dim, list) else dim.choice if isinstance(dim, Choice) else list(
            getattr(dim, "log_uniform", None) or getattr(dim, "uniform", None) or dim.int)
        points += [{path: v} for v in values]
    return points


def job_spec(request: SweepRequest, params: dict[str, Any], seed_index: int) -> dict:
    """The spec of one seed of one point."""
    spec = request.base
    for path, value in params.items():
        spec = set_path(spec, path, value)
    spec = copy.deepcopy(spec)
    seed = spec.get("seed", 0)
    if isinstance(seed, int) and not isinstance(seed, bool):  # anything else is left for the spec's checks to refuse
        spec["seed"] = seed + seed_index
    return spec
