"""The MLflow experiment of an owner's experiment: created by the service and found again by the id
it keeps in the store (services/store/mlflow_experiments.py), never adopted by name.

With MLflow guarded (AUTH=on) a name is `<owner>/<experiment>`, and an experiment of that name the
service did not create is someone else's: its runs would be readable and deletable by them. So the
service reserves a key in its store, creates the experiment with that key as its `bplab.key` tag and
records its id. When the name is taken it keeps the experiment only if it is provably its own: the
tag carries its key (it created it just before a crash), or its owner's jobs already point at it (an
older version created it) and nobody but the owner holds a permission on it (checked once after the
upgrade, then recorded). Anything else raises ExperimentTaken, which the mirror reports on the job.
Nobody but the admin may create or rename experiments in the first place (services/mlflow/guard.py).

With AUTH=off there is one owner and nothing to squat: a name found is used, as MLflow's own client would.
"""

from __future__ import annotations

import threading

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy.orm import Session, sessionmaker

from services.jobs.metadata import DEFAULT_EXPERIMENT
from services.mlflow.owners import MlflowOwners, experiment_name, guarded
from services.settings import Settings
from services.store import mlflow_experiments

MLFLOW_DEFAULT_ID = "0"  # MLflow's own Default experiment
KEY_TAG = "bplab.key"

_EXPERIMENTS: dict[tuple[str, str], str] = {}
_EXPERIMENTS_LOCK = threading.Lock()


class ExperimentTaken(RuntimeError):
    """The experiment's name in MLflow belongs to an experiment the service did not create."""


def experiment_id(client: MlflowClient, sessions: sessionmaker[Session], owner: str, experiment: str, settings: Settings) -> str:
    """The MLflow experiment of an owner's experiment (created on first use; with MLflow guarded, per
    owner and granted to them), looked up once per process and tracking server."""
    name = experiment_name(owner, experiment, settings)
    key = (client.tracking_uri, name)
    with _EXPERIMENTS_LOCK:
        if key not in _EXPERIMENTS:
            if not guarded(settings):
                _EXPERIMENTS[key] = _mlflow_default(client) if experiment == DEFAULT_EXPERIMENT else _by_name(client, name)
            else:
                found = _owned(client, sessions, owner, experiment, name, settings)
                with MlflowOwners(settings) as owners:
                    owners.grant(owner, found)
                _EXPERIMENTS[key] = found
        return _EXPERIMENTS[key]


def forget_experiments() -> None:
    """Look experiments up again (after a failure: one may have been deleted)."""
    _EXPERIMENTS.clear()


def _owned(client: MlflowClient, sessions: sessionmaker[Session], owner: str, experiment: str, name: str, settings: Settings) -> str:
    server = client.tracking_uri
    with sessions.begin() as session:
        row = mlflow_experiments.reserve(session, server, owner, experiment)
        reserved_key, known = row.key, row.mlflow_id
        used_before = mlflow_experiments.used_before(session, owner, experiment)
    if known is not None:
        return known
    try:
        found = client.create_experiment(name, tags={KEY_TAG: reserved_key})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        found = _adopt_if_ours(client, owner, name, reserved_key, used_before, settings)
    with sessions.begin() as session:
        mlflow_experiments.record(session, server, owner, experiment, found)
    return found


def _adopt_if_ours(client: MlflowClient, owner: str, name: str, reserved_key: str, used_before: set[str], settings: Settings) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is None:  # deleted for good since: the next pass creates it
        raise MlflowException(f"experiment {name!r} vanished while it was looked up", error_code="TEMPORARILY_UNAVAILABLE")
    if existing.tags.get(KEY_TAG) == reserved_key:  # ours, made by a pass that died before recording it
        return existing.experiment_id
    if existing.experiment_id in used_before:  # an older version's: kept if nobody else can reach it
        with MlflowOwners(settings) as owners:
            others = {user: permission for user, permission in owners.holders(existing.experiment_id).items() if user != owner}
        if not others:
            client.set_experiment_tag(existing.experiment_id, KEY_TAG, reserved_key)
            return existing.experiment_id
        raise ExperimentTaken(f"the MLflow experiment {name!r} (id {existing.experiment_id}) is shared with {', '.join(sorted(others))}, "
                              "so nothing more of this job is written there; an MLflow admin should revoke their permissions")
    raise ExperimentTaken(f"the MLflow experiment name {name!r} is taken by an experiment this service did not create "
                          f"(id {existing.experiment_id}), so nothing of this job is written there; an MLflow admin should rename it")


def _by_name(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as exc:  # another mirror created it first
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def _mlflow_default(client: MlflowClient) -> str:
    """MLflow's own `Default` experiment (id 0), restored if someone deleted it: jobs given no
    experiment go there, so the UI lists one default, not ours beside MLflow's."""
    default = client.get_experiment(MLFLOW_DEFAULT_ID)
    if default.lifecycle_stage == "deleted":
        client.restore_experiment(MLFLOW_DEFAULT_ID)
    return MLFLOW_DEFAULT_ID
