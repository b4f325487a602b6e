"""/sweeps: a sweep as the API shows it, its leaderboard and parameter importance (the request is
`services.sweeps.request.SweepRequest`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from services.store.models import SweepStatus

from .common import Body, Id, Out, Query, Unset
from .jobs import Job


class SweepListQuery(Query):
    cursor: Id | Unset = Field(default=None, description="`next_cursor` of the previous page")
    limit: int = Field(default=50, ge=1, le=500, description="page size, 1-500")


class SweepObjective(Out):
    metric: str
    goal: Literal["minimize", "maximize"]


class SweepProgress(Out):
    trials: int = Field(description="points the sweep will train (grid size or `trials`)")
    trials_started: int
    seeds: int
    planned_jobs: int
    jobs: int = Field(description="jobs created so far")
    by_state: dict[str, int] = Field(description="jobs per status")


class LeaderboardRow(Out):
    trial: int
    params: dict[str, Any] = Field(description="the point: a value per swept path")
    jobs: list[int]
    seeds_done: int
    objective_mean: float | None
    objective_std: float | None
    final_loss_mean: float | None
    diverged: int = Field(description="seeds that diverged")
    status: Literal["running", "done", "early_stopped"]


class SweepLinks(Out):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    self_: str = Field(alias="self")
    jobs: str
    importance: str
    cancel: str


class RefusedPoint(Out):
    """A point a sampler proposed that no job could be: pruned, and said here."""

    trial: int
    params: dict[str, Any]
    field: str = Field(description="the spec field that broke a rule or a limit")
    reason: str
    limit: dict[str, Any] | None = Field(default=None, description="the limit's `name`, `value` and what was `requested`")


class SweepSummary(Out):
    id: int
    name: str | None
    experiment: str
    strategy: str
    status: SweepStatus
    created_at: datetime
    objective: SweepObjective
    progress: SweepProgress
    max_parallel: int
    importance: dict[str, float] | None
    refused_points: list[RefusedPoint] = Field(description="sampled points refused before a job existed (over a limit, say)")
    links: SweepLinks


class Sweep(SweepSummary):
    leaderboard: list[LeaderboardRow] = Field(description="best first: mean ± std of the objective over seeds")
    jobs: list[Job]


class SweepList(Out):
    sweeps: list[SweepSummary]
    next_cursor: str | None
    next: str | None


class Importance(Out):
    sweep_id: int
    objective: str
    importance: dict[str, float] = Field(description="Optuna's fANOVA importance per swept parameter (sums to 1)")
    final: bool = Field(description="whether the sweep ended (the figures will not change)")


class ExtendRequest(Body):
    """More trials for a random or tpe sweep."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"trials": 10}]})

    trials: int = Field(ge=1, le=10_000, description="trials to add (each trained `seeds` times)")
