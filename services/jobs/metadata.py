"""What a job carries besides its spec (name, experiment, tags, time limits), with one set of
rules for a job submitted alone and for the jobs a sweep creates."""

from __future__ import annotations

import json
from importlib import resources
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from engine.spec import JobSpec

from .time_limits import TimeLimitsRequest

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no control characters (CR, LF, NUL, ...)
MAX_NAME = 200
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=PRINTABLE)]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=250, pattern=PRINTABLE)]
TagValue = Annotated[str, StringConstraints(max_length=500, pattern=PRINTABLE)]
MAX_TAGS = 50
DEFAULT_EXPERIMENT = "default"


class JobMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name | None = Field(default=None, description="a name to find the job by (1-200 printable characters)")
    experiment: Name = Field(default=DEFAULT_EXPERIMENT, description="the experiment (MLflow's) the job belongs to")
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=MAX_TAGS,
                                         description=f"at most {MAX_TAGS} string tags, e.g. {{\"team\": \"vision\"}}")
    time_limits: TimeLimitsRequest | None = Field(default=None, description="seconds per attempt, at most the server's limits")


META_FIELDS = tuple(JobMetadata.model_fields)


# The post's worked example as a job of 100 steps, traced at its first: what Swagger UI offers to send.
POSTS_EXAMPLE = {**json.loads(resources.files("engine.examples").joinpath("seed-trace.json").read_text()),
                 "name": "the post's example", "experiment": "post", "steps": 100, "record": {"every": 1, "trace": [0]}}


class JobSubmission(JobSpec, JobMetadata):
    """A job spec (the engine's contract, shared with `python -m engine` and the client) plus optional metadata."""

    model_config = ConfigDict(extra="forbid", strict=True, title="JobSubmission", json_schema_extra={"examples": [POSTS_EXAMPLE]})
