"""/api/v1/experiments: the owner's experiments; archive and restore an experiment's ended jobs."""

from __future__ import annotations

from flask import Blueprint

from services.store import housekeeping

from ..auth import owner
from ..errors import ApiError
from ..openapi import operation
from ..request_session import db, transaction
from ..schemas.common import NoQuery
from ..schemas.experiments import Archived, Experiment, ExperimentList

bp = Blueprint("experiments", __name__, url_prefix="/api/v1/experiments")


@bp.get("")
@operation("experiments", ok=ExperimentList, query=NoQuery)
def list_experiments():
    """The caller's experiments, most recently used first, with how many jobs each holds and has archived."""
    return ExperimentList(experiments=[Experiment(**row) for row in housekeeping.experiments(db(), owner())])


@bp.post("/<path:name>/archive")
@operation("experiments", ok=Archived, query=NoQuery, problems=("not-found",))
def archive_experiment(name: str):
    """Archive the experiment's ended jobs: hidden from lists (`archived=true` shows them), their MLflow runs deleted
    (restorably). Jobs still queued or running are left as they are."""
    return _set_archived(name, True)


@bp.post("/<path:name>/restore")
@operation("experiments", ok=Archived, query=NoQuery, problems=("not-found",))
def restore_experiment(name: str):
    """Bring the experiment's archived jobs back, and their MLflow runs."""
    return _set_archived(name, False)


def _set_archived(name: str, archived: bool) -> Archived:
    if not any(row["name"] == name for row in housekeeping.experiments(db(), owner())):
        raise ApiError("not-found", f"no experiment {name!r}")
    with transaction() as session:
        changed, not_ended = housekeeping.set_archived(session, owner(), name, archived)
    return Archived(experiment=name, changed=changed, not_ended=not_ended)
