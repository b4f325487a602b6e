"""What a job recorded: metric series, their keys, and the full gradients and backward-pass trace of a step."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, RootModel

from .common import Out, Query, Step, Unset


class MetricsQuery(Query):
    keys: str | Unset = Field(default=None, max_length=10_000,
                             description="comma-separated metric keys (default: all); an unknown key is a 404 listing the known ones")
    start: Step | Unset = Field(default=None, description="first step (inclusive)")
    end: Step | Unset = Field(default=None, description="last step (inclusive)")
    max_points: int | Unset = Field(default=None, ge=4, le=1_000_000,
                                   description="downsample each series to about this many points (first/min/max/last per bucket: spikes stay)")


class Series(Out):
    steps: list[int]
    values: list[float | None] = Field(description="null where the value was not finite")


class Metrics(RootModel[dict[str, Series]]):
    """Series per metric key (`loss`, `val_loss`, `grad_norm/<tensor>`, ...; docs/job-spec.md lists them)."""


class MetricKeys(Out):
    keys: list[str]


class StepQuery(Query):
    step: Step = Field(description="a recorded step (see the job's `record` settings)")


class Gradients(Out):
    step: int
    replayed: bool = Field(default=False, description="computed on request by replaying the job (the step was not recorded in "
                           "full): bit for bit what a run recording it would have written")
    replayed_from: int | None = Field(default=None, description="a replay's start: the kept checkpoint's step it trained on from "
                                      "(0: the run's start; `GET /jobs/{id}/checkpoints`)")
    gradients: dict[str, list[list[float]] | list[float]] = Field(
        description="∂L/∂W (out × in) and ∂L/∂b per tensor (`dense_1.weight`, `dense_1.bias`, ...)")


Matrix = list[list[float]]


class TraceLayer(Out):
    name: str
    activation: str
    alpha: float | None
    W: Matrix = Field(description="weights before the update (out × in)")
    b: list[float]
    Z: Matrix = Field(description="pre-activations (samples × units)")
    A: Matrix = Field(description="activations (samples × units)")
    delta: Matrix = Field(description="δ = ∂L/∂Z (samples × units)")
    dW: Matrix
    db: list[float]
    W_new: Matrix = Field(description="weights after the update")
    b_new: list[float]


class Trace(Out):
    """Everything the post's worked example shows for one step: forward values, δ, gradients and the update."""

    step: int
    replayed: bool = Field(default=False, description="computed on request by replaying the job, as for the gradients")
    replayed_from: int | None = Field(default=None, description="a replay's start, as for the gradients")
    epoch: int
    lr: float
    loss: float
    fused: bool = Field(description="whether the output layer's δ came from the fused sigmoid+BCE / softmax+CE gradient")
    loss_name: str
    optimizer: str
    X: Matrix
    y: Matrix
    layers: list[TraceLayer]


class Checkpoints(Out):
    """The training states a job keeps for its replays and forks (docs/engine.md, "Kept checkpoints")."""

    job_id: int
    every: int = Field(description="steps between kept states (`record.checkpoints`, or chosen from the network's size); 0: none kept")
    steps: list[int] = Field(description="the steps kept so far: multiples of `every`, and the last step once the job has ended")
    bytes: int = Field(description="what they take (counted in the recording budget and the owner's quota)")
    deleted_at: datetime | None = Field(description="when the owner deleted them: replays and forks of the job are then refused (409)")
