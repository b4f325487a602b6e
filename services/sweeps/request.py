"""The sweep as submitted: its search space, strategy, seeds and objective, and the job spec of
each point (the base spec with the point's values set at their dotted paths)."""

from __future__ import annotations

import copy
import itertools
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.spec import SEED_MAX, InvalidField, SpecError, errors_from_validation

from ..jobs.metadata import JobMetadata

PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


Bounds = Annotated[list[float], Field(min_length=2, max_length=2)]


class LogUniform(_Strict):
    log_uniform: Bounds


class Uniform(_Strict):
    uniform: Bounds


class IntRange(_Strict):
    int: Annotated[list[int], Field(min_length=2, max_length=2)]


class Choice(_Strict):
    choice: list[Any] = Field(min_length=1)


Dimension = list[Any] | LogUniform | Uniform | IntRange | Choice


class Objective(_Strict):
    metric: str = "val_loss"
    goal: Literal["minimize", "maximize"] = "minimize"


class EarlyStop(_Strict):
    rule: Literal["median", "asha"]
    grace_steps: int = Field(default=0, ge=0)


# The README's sweep (examples/sweep.yaml): what Swagger UI offers to send.
README_SWEEP = {"name": "lr-x-batch", "experiment": "post",
                "base": {"model": {"layers": [{"units": 8, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
                         "data": {"builtin": "moons", "n_samples": 200, "validation_split": 0.25}, "optimizer": {"name": "sgd", "lr": 0.1},
                         "epochs": 20},
                "strategy": "grid", "space": {"optimizer.lr": [0.001, 0.01, 0.1, 1, 10], "batch_size": [1, "full"]}, "seeds": 3,
                "objective": {"metric": "val_loss", "goal": "minimize"}, "max_parallel": 4}


class SweepRequest(JobMetadata):
    """A sweep: a base job spec, the space of values to try at dotted paths in it, and how to search it.

    Its name, experiment, tags and time limits (the job metadata rules) go to each of its jobs."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [README_SWEEP]})

    base: dict[str, Any] = Field(description="a job spec (see JobSubmission, without the metadata) that every point starts from; "
                                             "fields the space sets may be left out")
    strategy: Literal["grid", "random", "tpe"] = Field(default="grid",
                                                       description="grid: every combination; random and tpe: `trials` samples (Optuna)")
    space: dict[str, Dimension] = Field(min_length=1, max_length=32, description="dotted path in the spec (`optimizer.lr`, "
                                        "`model.layers[0].units`) -> a list of values, or for random/tpe a distribution")
    trials: int | None = Field(default=None, ge=1, description="points to sample (random, tpe)")
    seeds: int = Field(default=1, ge=1, le=100, description="seeds per point: `seed`, `seed + 1`, ... of the base spec")
    objective: Objective = Field(default_factory=Objective)
    max_parallel: int = Field(default=4, ge=1, le=1000, description="jobs of the sweep queued or running at once")
    early_stop: EarlyStop | None = Field(default=None, description="prune points that trail the others (Optuna's pruners)")
    stack: bool = Field(default=True, description="train the points that share a shape (units, batch size, optimizer, ...) as one "
                                                  "computation, each still its own job; `false`: one job at a time")

    @model_validator(mode="after")
    def _fits_strategy(self) -> SweepRequest:
        for path, dim in self.space.items():
            if self.strategy == "grid" and not isinstance(dim, list):
                raise InvalidField(f"space.{path}", "grid sweeps take lists of values")
            if isinstance(dim, list) and not dim:
                raise InvalidField(f"space.{path}", "empty list")
            for bounds in (getattr(dim, "log_uniform", None), getattr(dim, "uniform", None), getattr(dim, "int", None)):
                if bounds is not None and not bounds[0] < bounds[1]:
                    raise InvalidField(f"space.{path}", "the low bound must be below the high one")
            if isinstance(dim, LogUniform) and dim.log_uniform[0] <= 0:
                raise InvalidField(f"space.{path}", "log_uniform bounds must be > 0")
        if self.strategy != "grid" and self.trials is None:
            raise InvalidField("trials", "required by random and tpe sweeps")
        if self.base_seed + self.seeds - 1 > SEED_MAX:
            raise InvalidField("seeds", f"seeds {self.base_seed} .. {self.base_seed + self.seeds - 1} go past the largest seed ({SEED_MAX})")
        return self

    @property
    def n_trials(self) -> int:
        if self.strategy == "grid":
            return math.prod(len(v) for v in self.space.values())
        return self.trials

    @property
    def shares_data(self) -> bool:
        """Whether every point trains on the base's data (the space sets nothing under `data`)."""
        return not any(path == "data" or path.startswith(("data.", "data[")) for path in self.space)

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
    return request


def set_path(spec: dict, path: str, value: Any, where: str = "space") -> dict:
    """A copy of `spec` with the field at `path` (`optimizer.lr`, `model.layers[0].units`) set. Only
    the containers on the path are copied: the rest (a large inline dataset, say) is shared. Errors
    name the field as `<where>.<path>`."""
    steps: list[Any] = []
    for part in path.split("."):
        match = PATH_PART.fullmatch(part)
        if match is None:
            raise SpecError([(f"{where}.{path}", f"{part!r} is not a field name")])
        steps.append(match.group(1))
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    out = copy.copy(spec)
    target: Any = out
    for step, following in itertools.pairwise(steps):
        try:
            child = target[step] if isinstance(step, int) else target.get(step, {})
        except (IndexError, KeyError, TypeError, AttributeError):
            raise SpecError([(f"{where}.{path}", f"the base spec has no {step!r} here")]) from None
        if not isinstance(child, (dict, list)) or (isinstance(following, int) != isinstance(child, list)):
            raise SpecError([(f"{where}.{path}", f"the base spec has no {following!r} under {step!r}")])
        child = copy.copy(child)
        target[step] = child
        target = child
    last = steps[-1]
    try:
        target[last] = value
    except (IndexError, TypeError):
        raise SpecError([(f"{where}.{path}", f"the base spec has no {last!r} here")]) from None
    return out


def corner_points(request: SweepRequest) -> list[dict[str, Any]]:
    """Points checked before anything is queued: the whole grid, or each dimension's bounds and choices."""
    if request.strategy == "grid":
        keys = list(request.space)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*request.space.values())]
    points = []
    for path, dim in request.space.items():
        values = dim if isinstance(dim, list) else dim.choice if isinstance(dim, Choice) else list(
            getattr(dim, "log_uniform", None) or getattr(dim, "uniform", None) or dim.int)
        points += [{path: v} for v in values]
    return points


def job_spec(request: SweepRequest, params: dict[str, Any], seed_index: int) -> dict:
    """The spec of one seed of one point (sharing what the point does not change with the base: never mutate it)."""
    spec = request.base
    for path, value in params.items():
        spec = set_path(spec, path, copy.deepcopy(value))
    spec = dict(spec)
    seed = spec.get("seed", 0)
    if isinstance(seed, int) and not isinstance(seed, bool):  # anything else is left for the spec's checks to refuse
        spec["seed"] = seed + seed_index
    return spec
