"""/experiments: the owner's experiments and the answer of archiving or restoring one."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from .common import Out


class Experiment(Out):
    name: str
    jobs: int
    archived_jobs: int
    active_jobs: int = Field(description="jobs queued or running")
    last_created_at: datetime | None = Field(description="when its newest job was submitted")


class ExperimentList(Out):
    experiments: list[Experiment]


class Archived(Out):
    experiment: str
    changed: int = Field(description="ended jobs archived (or restored) by this request")
    not_ended: int = Field(description="jobs still queued or running, left as they are")
