"""The MLflow experiments the service created, per server, owner and experiment (the mirror's only
way to find one: never by name, which anyone may have taken)."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .columns import utcnow
from .models import Job, MlflowExperiment
from .upsert import insert_missing


def reserve(session: Session, server: str, owner: str, experiment: str) -> MlflowExperiment:
    """The row of (server, owner, experiment), made with a fresh key if there is none yet (two
    mirrors reserving at once share one row and one key)."""
    insert_missing(session, MlflowExperiment, {"server": server, "owner": owner, "experiment": experiment,
                                               "key": uuid.uuid4().hex, "mlflow_id": None, "created_at": utcnow()},
                   ["server", "owner", "experiment"])
    return session.scalars(select(MlflowExperiment).where(MlflowExperiment.server == server, MlflowExperiment.owner == owner,
                                                          MlflowExperiment.experiment == experiment)
                           .execution_options(populate_existing=True)).one()


def record(session: Session, server: str, owner: str, experiment: str, mlflow_id: str) -> None:
    """The experiment's MLflow id, once the service created it (or checked one an older version made)."""
    session.execute(update(MlflowExperiment).where(MlflowExperiment.server == server, MlflowExperiment.owner == owner,
                                                   MlflowExperiment.experiment == experiment).values(mlflow_id=mlflow_id))


def used_before(session: Session, owner: str, experiment: str) -> set[str]:
    """MLflow ids the owner's jobs in `experiment` already point at: runs an older version wrote (it
    found experiments by name), which the mirror checks before it keeps one."""
    return set(session.scalars(select(Job.mlflow_experiment_id).where(Job.owner == owner, Job.experiment == experiment,
                                                                      Job.mlflow_experiment_id.is_not(None)).distinct()))
