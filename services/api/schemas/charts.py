"""Charts (SVG drawn on the server) and what the pages need beside the resources: recorded steps."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.charts.job import CHARTS

from .common import Out, Query, Step, Unset

ChartName = Literal[tuple(CHARTS) + ("decision_boundary",)]  # type: ignore[valid-type]


Smoothing = Field(default=0.0, ge=0.0, lt=1.0, description="TensorBoard's smoothing of the step series: the weight of an "
                  "exponential moving average debiased at the start (0: none; 0.6 is TensorBoard's default); the raw series is drawn "
                  "faint behind, epoch-level series are never smoothed")
Scale = Field(default=None, description="the y axis: `linear` or `log` (default: the chart's own; loss is linear)")


class ChartQuery(Query):
    step: Step | Unset = Field(default=None, description="decision_boundary: the weights of this traced step (default: the final model)")
    max_points: int = Field(default=1000, ge=10, le=20_000, description="points per line (first/min/max/last per bucket: spikes stay)")
    smoothing: float = Smoothing
    scale: Literal["linear", "log"] | None = Scale


class Chart(Out):
    """A chart as SVG text (with `Accept: image/svg+xml`, the SVG itself)."""

    title: str
    svg: str


class RecordedSteps(Out):
    gradients: list[int] = Field(description="steps with full gradients (`record.gradients: full`)")
    trace: list[int] = Field(description="steps with a backward-pass trace")


class ObjectiveQuery(Query):
    param: str = Field(min_length=1, max_length=300, description="a swept parameter's dotted path (`optimizer.lr`)")


class CompareQuery(Query):
    jobs: str = Field(pattern=r"^[1-9]\d{0,18}(,[1-9]\d{0,18}){0,9}$", description="2-10 comma-separated job ids")
    key: str = Field(default="loss", min_length=1, max_length=250, description="the metric key overlaid")
    max_points: int = Field(default=1000, ge=10, le=20_000)
    smoothing: float = Smoothing
    scale: Literal["linear", "log"] | None = Scale
