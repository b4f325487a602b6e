"""One run per job, written from the store by the MLflow worker, never by the training worker.

A pass (`mirror_pass`, run every MLFLOW_FLUSH_SECONDS on the `<queue>.mlflow` queue) works runs
first, series after: it claims the jobs whose run itself is behind and brings each up
(worker/mlflow/run_state.py: created with params and tags; once the job has ended, its summary,
each key's last point, its status and the job's own end time, so MLflow's Duration is the training
time), and only when none is left gives the jobs whose series are behind a turn each, the one that
waited longest first (worker/mlflow/series.py), looking for newly ended jobs again after every
batch of turns. Every step is safe to repeat. When MLflow is unreachable the pass stops, the cursor
stays put and the job's mirror reads `pending` with the reason; a later pass catches up. Several
MLflow workers may run on as many hosts: each job's lock in the store keeps its run to one of them
at a time. Training never waits for any of this.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy.orm import Session, sessionmaker

from services.jobs.public_errors import describe
from services.settings import Settings
from services.store import housekeeping, mirror_cursor
from services.store.db import session_factory
from services.store.models import MirrorState

from .experiments import ExperimentTaken, forget_experiments
from .run_model import delete_run_models
from .run_state import bring_run_up
from .series import series_turn
from .sweep_runs import SweepRunBusy, finish_pending_sweeps

logger = logging.getLogger(__name__)

BATCH_JOBS = 20  # runs claimed at a time
RUN_THREADS = 4  # runs brought up at once: the server takes one's call while the others' are built and sent
SERIES_BATCH = 4  # jobs given a series turn between two looks for newly ended jobs
SERIES_THREADS = 2  # series sent at once: one's points are read and built while the server stores another's
PASS_SECONDS = 20.0  # a pass keeps working for this long


class MlflowDown(RuntimeError):
    """MLflow could not be reached: the pass stops here, a later one carries on."""


def failure(exc: BaseException) -> tuple[MirrorState, str]:
    """What a failed MLflow call means for the mirror: retry later (`pending`) or give up (`failed`)."""
    if isinstance(exc, ExperimentTaken):
        return MirrorState.failed, str(exc)
    if isinstance(exc, MlflowException):
        transient = exc.get_http_status_code() >= 500 or "Connection" in str(exc) or "Max retries" in str(exc)
        return (MirrorState.pending if transient else MirrorState.failed,
                f"MLflow {'unreachable' if transient else 'refused the data'}: {describe(exc)}")
    if isinstance(exc, OSError):  # connection refused, timeouts
        return MirrorState.pending, f"MLflow unreachable: {describe(exc)}"
    return MirrorState.pending, describe(exc)


def mirror_pass(settings: Settings, batch: int = BATCH_JOBS, seconds: float = PASS_SECONDS) -> dict[int, str]:
    """The MLflow worker's periodic work: runs first, then series turns, then the parent runs of ended
    sweeps and the runs of deleted jobs. Returns {job_id: mirror state} of the jobs it touched."""
    if not settings.mlflow_tracking_uri:
        return {}
    sessions = session_factory(settings.database_url)
    client = MlflowClient(settings.mlflow_tracking_uri)
    done: dict[int, str] = {}
    deadline = time.monotonic() + seconds

    def runs(job_id: int, token: str) -> tuple[MirrorState, int]:
        return bring_run_up(sessions, client, job_id, token, settings), 1

    def series(job_id: int, token: str) -> tuple[MirrorState, int]:
        return series_turn(sessions, client, job_id, token, settings)

    try:
        while time.monotonic() < deadline:
            token = str(uuid.uuid4())
            with sessions.begin() as session:
                job_ids = mirror_cursor.claim_runs(session, token, batch)
            if job_ids and _each(sessions, job_ids, token, runs, RUN_THREADS, done):
                continue  # look for more ended jobs before any series (runs that failed wait for the series' turns)
            with sessions.begin() as session:
                job_ids = mirror_cursor.claim_series(session, token, SERIES_BATCH)
            if not job_ids or not _each(sessions, job_ids, token, series, SERIES_THREADS, done):
                break  # nothing behind, or only running jobs with no new points: the next pass looks again
        finish_pending_sweeps(settings)
        delete_runs(settings)
    except MlflowDown:
        pass
    return done


def _each(sessions: sessionmaker[Session], job_ids: list[int], token: str, work: Callable[[int, str], tuple[MirrorState, int]],
          threads: int, done: dict[int, str]) -> int:
    """Do `work` for each claimed job, `threads` at a time, each job's lock released after it. Raises
    MlflowDown (the jobs not yet started released) once MLflow proves unreachable. Returns how much
    was done (runs brought up, points sent, series completed)."""
    down = threading.Event()

    def one(job_id: int) -> tuple[MirrorState, int] | None:
        if down.is_set():
            with sessions.begin() as session:
                mirror_cursor.release(session, job_id, token)
            return None
        outcome, reason = _locked(sessions, job_id, token, work)
        if reason is not None and reason.startswith("MLflow unreachable"):
            down.set()
        return outcome

    with ThreadPoolExecutor(threads, thread_name_prefix="mlflow-mirror") as pool:
        outcomes = dict(zip(job_ids, pool.map(one, job_ids), strict=True))
    done.update({job_id: outcome[0].value for job_id, outcome in outcomes.items() if outcome is not None})
    if down.is_set():
        raise MlflowDown("MLflow unreachable")
    return sum(amount + (state is MirrorState.synced) for state, amount in filter(None, outcomes.values()))


def _locked(sessions: sessionmaker[Session], job_id: int, token: str,
            work: Callable[[int, str], tuple[MirrorState, int]]) -> tuple[tuple[MirrorState, int], str | None]:
    """Do `work` for a job whose lock we hold, record the outcome (state, and the reason when it
    failed), release the lock."""
    try:
        outcome, reason = work(job_id, token), None
    except Exception as exc:
        if not isinstance(exc, (MlflowException, OSError, SweepRunBusy, ExperimentTaken)):
            logger.exception("mirror of job %s failed", job_id)
        forget_experiments()  # one may have been deleted behind our back
        state, reason = failure(exc)
        outcome = (state, 0)
        logger.warning("mirror of job %s: %s (%s)", job_id, state.value, reason)
    with sessions.begin() as session:
        mirror_cursor.save(session, job_id, token, mirror_state=outcome[0], mirror_error=reason)
        mirror_cursor.release(session, job_id, token)
    return outcome, reason


def delete_runs(settings: Settings, limit: int = 100) -> int:
    """Delete the MLflow runs of deleted jobs (MLflow's soft delete: `mlflow gc` purges them); how many."""
    sessions = session_factory(settings.database_url)
    client = MlflowClient(settings.mlflow_tracking_uri)
    with sessions() as session:
        run_ids = housekeeping.pending_deletions(session, limit)
    for run_id in run_ids:
        try:
            delete_run_models(client, run_id)
            client.delete_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                logger.warning("deleting MLflow run %s: %s (retried next pass)", run_id, describe(exc))
                return 0
        except OSError as exc:
            logger.warning("deleting MLflow run %s: %s (retried next pass)", run_id, describe(exc))
            return 0
        with sessions.begin() as session:
            housekeeping.deletion_done(session, run_id)
    return len(run_ids)
