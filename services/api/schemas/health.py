"""/healthz (the process answers) and /readyz (it can do its work)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Out


class Health(Out):
    status: Literal["ok"]


class Check(Out):
    ok: bool
    detail: str


class MirrorBacklog(Out):
    """What the MLflow worker has still to write (runs go first, series after)."""

    runs: int = Field(description="ended jobs whose MLflow run has not yet got its status and summary")
    series: int = Field(description="jobs whose series (or artifacts) are not yet all in MLflow, running ones included")
    points: int = Field(description="metric points those series wait for, as of the MLflow worker's last look at each job")


class Readiness(Out):
    ready: bool = Field(description="the database answers with its schema at the newest migration, and the broker answers")
    database: Check | None = Field(default=None, description="null for an anonymous caller with AUTH=on (as are the other checks): "
                                                             "they say only whether the service is ready")
    migrations: Check | None = None
    broker: Check | None = None
    mlflow: Check | None = Field(default=None, description="reported, never a reason to be unready: training does not wait for MLflow")
    outbox: int | None = Field(default=None, description="jobs stored but not yet handed to the broker (they start once it answers); "
                                           "null when the database does not answer, and with AUTH=on (it would tell anyone of every owner's work)")
    mlflow_backlog: MirrorBacklog | None = Field(default=None, description="what the MLflow worker has still to write; null when MLflow is off, "
                                                 "when the database does not answer, and with AUTH=on (as the outbox)")
