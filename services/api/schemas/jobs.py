"""/jobs: what a submission sends, the filters of the list, and a job as the API shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from services.jobs.metadata import MAX_TAGS, Name, TagKey, TagValue
from services.jobs.time_limits import TimeLimitsRequest
from services.store.models import MAX_INT32, JobStatus, MirrorState

from .common import Body, Id, Out, Query, Step, Unset
from .diagnoses import DiagnosisKind

MAX_PAGE = 500


class JobListQuery(Query):
    status: JobStatus | Unset = Field(default=None, description="only jobs in this state")
    experiment: str | Unset = Field(default=None, max_length=200, description="only jobs of this experiment")
    tag: str | Unset = Field(default=None, max_length=760, description="only jobs with this tag: `key` or `key:value`")
    sweep_id: Id | Unset = Field(default=None, description="only the jobs of this sweep")
    diagnosis: DiagnosisKind | Unset = Field(default=None, description="only jobs with a diagnosis of this kind (`dead_units`, ...)")
    q: str | Unset = Field(default=None, min_length=1, max_length=200, description="only jobs whose name contains this text (any case)")
    archived: bool = Field(default=False, description="`true`: the archived jobs instead (see /experiments/{name}/archive)")
    include: Literal["params"] | Unset = Field(default=None, description="`params`: add each job's spec as flat params "
                                               "(`lr`, `batch_size`, `layers.0.units`: the names its MLflow run has)")
    cursor: Id | Unset = Field(default=None, description="`next_cursor` of the previous page")
    limit: int = Field(default=50, ge=1, le=MAX_PAGE, description=f"page size, 1-{MAX_PAGE}")


class JobQuery(Query):
    include: Literal["spec", "params"] | Unset = Field(default=None, description="`spec`: add the submitted spec (with any "
                                                       "inline data); `params`: add it as flat params, as its MLflow run has them")


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
    points_due: int = Field(description="metric points the run is to get in all, past MLflow's limits thinned (MLFLOW_MAX_POINTS_PER_KEY), "
                                        "as of the MLflow worker's last look: `points_due - points` is how far behind it is")
    run_finished_at: datetime | None = Field(description="when the ended job's run got its status, summary and last points in MLflow "
                                                         "(its series may follow later)")


class ModelVersion(Out):
    name: str = Field(description="the registered model's name in MLflow")
    version: str
    url: str | None = Field(description="the version's page in the MLflow UI")
    created_at: datetime


class JobLinks(Out):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    self_: str = Field(alias="self")
    spec: str
    metrics: str
    metric_keys: str
    events: str
    model: str
    predict: str
    register_: str = Field(alias="register")
    cancel: str
    clone: str
    gradients: str
    trace: str


class ForkedFrom(Out):
    job: int = Field(description="the parent job: the fork's steps before `step` are its")
    step: int = Field(description="the fork starts from the parent's exact state after this many steps")


class Job(Out):
    id: int
    name: str | None
    experiment: str
    tags: dict[str, str]
    sweep_id: int | None
    sweep_params: dict[str, Any] | None = Field(description="a sweep's job: the point it trains (dotted path -> value); null otherwise")
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
    archived: bool = Field(description="hidden from lists (`?archived=true` shows them); its MLflow run deleted until restored")
    mlflow: MlflowMirror
    diagnoses: list[DiagnosisKind] = Field(description="the kinds of diagnosis found in it, in the order first found "
                                                       "(`/jobs/{id}/diagnoses` has them in full)")
    registered: list[ModelVersion] = Field(description="versions of MLflow registered models made from this job (`POST /jobs/{id}/register`)")
    forked_from: ForkedFrom | None = Field(description="a fork (`POST /jobs/{id}/fork`, `/continue`): its parent and the step it "
                                           "starts from; null otherwise")
    links: JobLinks
    spec: dict[str, Any] | None = Field(default=None, exclude_if=lambda value: value is None,
                                        description="the submitted spec; only with `?include=spec`")
    params: dict[str, Any] | None = Field(default=None, exclude_if=lambda value: value is None,
                                          description="the spec as flat params (defaults applied, no inline data); only with `?include=params`")


class JobList(Out):
    jobs: list[Job]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")
    next: str | None = Field(description="the next page's URL; null on the last")


class JobChanges(Body):
    """What PATCH changes: only the fields sent."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "renamed", "tags": {"team": "vision", "draft": None}}]})

    name: Name | None = Field(default=None, description="the new name; null removes it")
    tags: dict[TagKey, TagValue | None] = Field(default_factory=dict, max_length=MAX_TAGS,
                                                description="tags to set; a null value removes that tag")


class CloneRequest(Body):
    """A new job from this one's spec, with fields changed by dotted path."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"set": {"optimizer.lr": 0.5}, "name": "the same at a larger rate"}]})

    set: dict[str, Any] = Field(default_factory=dict, max_length=64,
                                description="dotted path -> value, e.g. {\"optimizer.lr\": 0.5, \"model.layers[0].units\": 16}")
    name: Name | None = Field(default=None, description="default: none")
    experiment: Name | None = Field(default=None, description="default: the original's")
    tags: dict[TagKey, TagValue] | None = Field(default=None, max_length=MAX_TAGS,
                                                description="default: the original's; `cloned_from` is added either way")
    time_limits: TimeLimitsRequest | None = Field(default=None, description="default: the original's")


class ForkRequest(Body):
    """A job that starts from this one's exact state after `step` steps and trains on with fields changed by dotted
    path: the optimizer and its schedule, clipping, `model.dropout`, `steps` or `epochs`, `record`, `diagnose`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"step": 20, "set": {"optimizer.lr": 0.05}, "name": "halved at step 20"}]})

    step: Step | None = Field(default=None, description="default: the job's last step")
    set: dict[str, Any] = Field(default_factory=dict, max_length=64, description="dotted path -> value; nothing that changes the "
                                "network's shape or the data")
    name: Name | None = Field(default=None, description="default: none")
    experiment: Name | None = Field(default=None, description="default: the parent's")
    tags: dict[TagKey, TagValue] | None = Field(default=None, max_length=MAX_TAGS,
                                                description="default: the parent's; `forked_from` is added either way")
    time_limits: TimeLimitsRequest | None = Field(default=None, description="default: the parent's")


class ContinueRequest(Body):
    """Train an ended job further: a fork at its last step with `steps` (or `epochs`) more."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"steps": 100}]})

    steps: int | None = Field(default=None, ge=1, le=MAX_INT32, description="optimizer steps more (for a spec that counts steps)")
    epochs: int | None = Field(default=None, ge=1, le=MAX_INT32, description="epochs more (for a spec that counts epochs)")
    name: Name | None = Field(default=None, description="default: none")


class StatusEvent(Out):
    """`event: status` of a job's event stream: its state changed."""

    id: int
    status: JobStatus


class ProgressEvent(Out):
    """`event: progress` of a job's event stream: it moved. The epoch figures are the latest epoch's
    (null until an epoch has ended, and validation ones without a validation split)."""

    id: int
    step: int
    total_steps: int
    loss: float | None = Field(description="the latest recorded mini-batch loss")
    epoch: int = Field(description="epochs completed")
    epochs: int = Field(description="epochs in all")
    train_loss: float | None
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None


def event_stream_schema() -> dict[str, Any]:
    """One Server-Sent Event of /jobs/{id}/events: `status`, `progress`, `diagnosis`, then `end` with the Job; `data` is JSON."""

    def event(name: str, data_schema: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "required": ["event", "data"], "properties": {
            "event": {"const": name}, "id": {"type": "string"},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data_schema}}}

    ref = "#/components/schemas/{model}"
    return {"description": "Server-Sent Events: `status` on every change, `progress` as the job moves, `diagnosis` as each is "
                           "found, then `end` with the Job",
            "oneOf": [event("status", StatusEvent.model_json_schema(ref_template=ref)),
                      event("progress", ProgressEvent.model_json_schema(ref_template=ref)),
                      event("diagnosis", {"$ref": "#/components/schemas/Diagnosis"}),
                      event("end", {"$ref": "#/components/schemas/Job"})]}
