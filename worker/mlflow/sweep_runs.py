"""A sweep's parent run in MLflow: its jobs' runs nest under it; once the sweep has ended it gets the
importance, the best objective, the leaderboard and its final status.

The parent run is created once, under the sweep's mirror lock (parallel mirrors of its jobs never
create two), and found again by its `sweep_key` tag if a crash came between creating it and storing
its id. Finishing it is recorded in the sweep's `mirror_state`; the back-fill retries a finish that
failed (MLflow down) until it is done.
"""

from __future__ import annotations

import json
import logging
import time

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.jobs.public_errors import describe
from services.settings import Settings
from services.store import sweeps
from services.store.db import session_factory
from services.store.models import Job, MirrorState, Sweep, SweepStatus
from services.store.sweeps import ENDED
from services.sweeps.leaderboard import leaderboard

from .experiments import experiment_id
from .run_content import MAX_PARAM_VALUE

logger = logging.getLogger(__name__)


class SweepRunBusy(RuntimeError):
    """Another process holds the sweep's mirror lock (it is creating or finishing the parent run)."""


def sweep_key(sweep: Sweep) -> str:
    return f"sweep-{sweep.id}-{int(sweep.created_at.timestamp() * 1000)}"


def _lock(sessions: sessionmaker[Session], sweep_id: int) -> str:
    with sessions.begin() as session:
        token = sweeps.lock_mirror(session, sweep_id)
    if token is None:
        raise SweepRunBusy(f"sweep {sweep_id}: its MLflow parent run is being written by another mirror")
    return token


def _unlock(sessions: sessionmaker[Session], sweep_id: int, token: str, **values: object) -> None:
    with sessions.begin() as session:
        sweeps.unlock_mirror(session, sweep_id, token, **values)


def ensure_sweep_run(client: MlflowClient, sessions: sessionmaker[Session], sweep_id: int, settings: Settings) -> str:
    """The sweep's parent run id, created once (SweepRunBusy while another mirror creates it)."""
    with sessions() as session:
        existing = session.get(Sweep, sweep_id).mlflow_parent_run_id
    if existing:
        return existing
    token = _lock(sessions, sweep_id)
    run_id = None
    try:
        run_id = _find_or_create(client, sessions, sweep_id, settings)
    finally:
        _unlock(sessions, sweep_id, token, parent_run_id=run_id)
    return run_id


def _find_or_create(client: MlflowClient, sessions: sessionmaker[Session], sweep_id: int, settings: Settings) -> str:
    with sessions() as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep.mlflow_parent_run_id:  # created while we waited for the lock
            return sweep.mlflow_parent_run_id
        experiment = experiment_id(client, sessions, sweep.owner, sweep.experiment, settings)
        found = client.search_runs([experiment], f"tags.sweep_key = '{sweep_key(sweep)}'", max_results=1)
        if found:
            return found[0].info.run_id
        run = client.create_run(experiment, run_name=sweep.name or f"sweep-{sweep.id}",
                                tags={"sweep_id": str(sweep.id), "sweep_key": sweep_key(sweep), "kind": "sweep"})
        params = {"strategy": sweep.strategy, "objective": f"{sweep.objective_goal} {sweep.objective_metric}",
                  "seeds": str(sweep.seeds), "trials": str(sweep.n_trials), "max_parallel": str(sweep.max_parallel),
                  "space": json.dumps(sweep.request["space"])[:MAX_PARAM_VALUE]}
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return run.info.run_id


def finish_sweep_run(sweep_id: int, settings: Settings) -> MirrorState | None:
    """Log an ended sweep's importance and leaderboard to its parent run and close it; None while the
    sweep still runs. A failure leaves `mirror_state` pending with the reason, for the back-fill."""
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep.status not in ENDED or sweep.mirror_state == MirrorState.synced:
            return sweep.mirror_state if sweep.status in ENDED else None
    client = MlflowClient(settings.mlflow_tracking_uri)
    try:
        run_id = ensure_sweep_run(client, sessions, sweep_id, settings)
        token = _lock(sessions, sweep_id)
    except (MlflowException, OSError, SweepRunBusy) as exc:
        _record(sessions, sweep_id, MirrorState.pending, describe(exc))
        return MirrorState.pending
    state, error = MirrorState.synced, None
    try:
        with sessions() as session:
            _log_results(client, session, run_id, session.get(Sweep, sweep_id))
    except (MlflowException, OSError) as exc:
        logger.warning("sweep %s: could not finish its MLflow run: %s", sweep_id, exc)
        state, error = MirrorState.pending, f"MLflow unreachable: {describe(exc)}"
    _unlock(sessions, sweep_id, token, state=state, error=error)
    return state


def _log_results(client: MlflowClient, session: Session, run_id: str, sweep: Sweep) -> None:
    board = leaderboard(sweep, list(session.scalars(select(Job).where(Job.sweep_id == sweep.id))))
    now = int(time.time() * 1000)
    metrics_out = [Metric(f"importance/{k}", v, now, 0) for k, v in (sweep.importance or {}).items()]
    if board and board[0]["objective_mean"] is not None:
        metrics_out.append(Metric(f"best/{sweep.objective_metric}", board[0]["objective_mean"], now, 0))
    client.log_batch(run_id, metrics=metrics_out)
    client.log_dict(run_id, {"leaderboard": board, "importance": sweep.importance}, "leaderboard.json")
    client.set_terminated(run_id, "FINISHED" if sweep.status == SweepStatus.finished else "KILLED")


def _record(sessions: sessionmaker[Session], sweep_id: int, state: MirrorState, error: str | None) -> None:
    with sessions.begin() as session:
        sweeps.record_mirror(session, sweep_id, state, error)


def finish_pending_sweeps(settings: Settings, limit: int = 20) -> dict[int, MirrorState | None]:
    """The back-fill's share for sweeps: finish the parent runs of ended sweeps not yet synced."""
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        ids = sweeps.pending_mirrors(session, limit)
    return {sweep_id: finish_sweep_run(sweep_id, settings) for sweep_id in ids}
