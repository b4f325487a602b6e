"""/jobs: what a submission sends, the filters of the list, and a job as the API shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from services.store.models import JobStatus, MirrorState

from .common import Id, Out, Query, Unset

MAX_PAGE = 500


class JobListQuery(Query):
    status: JobStatus | Unset = Field(default=None, description="only jobs in this state")
    experiment: str | Unset = Field(default=None, max_length=200, description="only jobs of this experiment")
    tag: str | Unset = Field(default=None, max_length=760, description="only jobs with this tag: `key` or `key:value`")
    sweep_id: Id | Unset = Field(default=None, description="only the jobs of this sweep")
    q: str | Unset = Field(default=None, min_length=1, max_length=200, description="only jobs whose name contains this text (any case)")
    cursor: Id | Unset = Field(default=None, description="`next_cursor` of the previous page")
    limit: int = Field(default=50, ge=1, le=MAX_PAGE, description=f"page size, 1-{MAX_PAGE}")


class JobQuery(Query):
    include: Literal["spec"] | Unset = Field(default=None, description="`spec`: add the submitted spec (with any inline data)")


class Progress(Out):
    step: int = Field(description="optimizer steps done")
    total_steps: int
    fraction: float
    loss: float | None = Field(description="the latest recorded mini-batch loss")


class JobTimeLimits(Out):
    """Seconds of training per attempt."""

    soft_seconds: int | None
    hard_seconds: int | None


class MlflowMirror(Out):
    """The job's MLflow run and how far the mirror got (MLflow follows the store; it never holds training up)."""

    experiment_id: str | None
    run_id: str | None
    run_url: str | None = Field(description="the run in the MLflow UI")
    state: MirrorState
    error: str | None
    points: int = Field(description="metric points the run has received")


class JobLinks(Out):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    self_: str = Field(alias="self")
    spec: str
    metrics: str
    metric_keys: str
    events: str
    model: str
    predict: str
    cancel: str
    gradients: str
    trace: str


class Job(Out):
    id: int
    name: str | None
    experiment: str
    tags: dict[str, str]
    sweep_id: int | None
    status: JobStatus
    attempt: int = Field(description="1 on the first try; more after a worker was lost")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Progress
    n_params: int
    time_limits: JobTimeLimits
    summary: dict[str, Any] | None = Field(description="final figures once the job ended (docs/job-spec.md lists them)")
    error: dict[str, Any] | None = Field(description="why the job failed, diverged or stopped: `reason`, `message`, ...")
    cancel_requested: bool
    mlflow: MlflowMirror
    links: JobLinks
    spec: dict[str, Any] | None = Field(default=None, exclude_if=lambda value: value is None,
                                        description="the submitted spec; only with `?include=spec`")


class JobList(Out):
    jobs: list[Job]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")
    next: str | None = Field(description="the next page's URL; null on the last")


class StatusEvent(Out):
    """`event: status` of a job's event stream: its state changed."""

    id: int
    status: JobStatus


class ProgressEvent(Out):
    """`event: progress` of a job's event stream: it moved."""

    id: int
    step: int
    total_steps: int
    loss: float | None


def event_stream_schema() -> dict[str, Any]:
    """One Server-Sent Event of /jobs/{id}/events: `status`, `progress`, then `end` with the Job; `data` is JSON."""

    def event(name: str, data_schema: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "required": ["event", "data"], "properties": {
            "event": {"const": name}, "id": {"type": "string"},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data_schema}}}

    ref = "#/components/schemas/{model}"
    return {"description": "Server-Sent Events: `status` on every change, `progress` as the job moves, then `end` with the Job",
            "oneOf": [event("status", StatusEvent.model_json_schema(ref_template=ref)),
                      event("progress", ProgressEvent.model_json_schema(ref_template=ref)),
                      event("end", {"$ref": "#/components/schemas/Job"})]}
