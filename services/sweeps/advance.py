"""A sweep's life: created with its first points, advanced whenever one of its jobs ends (and by the
periodic top-up), cancelled on request.

Advancing tells Optuna the trials whose jobs all ended, then starts new points while fewer than
`max_parallel` jobs are queued or running. One process advances a sweep at a time (its lock). A
point's jobs (one per seed) and the count of started points are written in one transaction, so a
crash never leaves a point short of jobs; a trial Optuna handed out whose jobs were never committed
(a crash between the two) gets its jobs on the next advance instead of a new trial.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.problem import RawData
from engine.spec import SpecError
from engine.stacking import stack_key

from ..charts.svg import category_label
from ..datasets.use import raw_data, resolve
from ..jobs.checks import Checked, OverLimit, check_job, parse_document, reserve
from ..jobs.metadata import MAX_NAME
from ..jobs.time_limits import TimeLimits
from ..mlflow.run_params import param_name
from ..settings import Settings
from ..store import jobs, locks, outbox, sweeps
from ..store.models import LOCAL_OWNER, TERMINAL, Job, JobStatus, Sweep, SweepStatus
from . import study as studies
from .leaderboard import objective_value
from .request import SweepRequest, job_spec

WAIT_SECONDS = 10.0  # an advance takes well under a second; a caller waits this long for the one in progress


def create_sweep(session: Session, request: SweepRequest, time_limits: TimeLimits, owner: str = LOCAL_OWNER,
                 mirrored: bool = True) -> Sweep:
    """Insert a running sweep whose jobs will get `time_limits` (`mirrored`: it will have an MLflow parent run)."""
    stored = request.model_dump(mode="json")
    stored["time_limits"] = {"soft_seconds": time_limits.soft, "hard_seconds": time_limits.hard}
    return sweeps.add(session, owner=owner, mirrored=mirrored, name=request.name, experiment=request.experiment,
                      strategy=request.strategy, request=stored, n_trials=request.n_trials, seeds=request.seeds,
                      max_parallel=request.max_parallel, objective_metric=request.objective.metric,
                      objective_goal=request.objective.goal)


def advance(sessions: sessionmaker[Session], sweep_id: int, settings: Settings, wait_seconds: float = WAIT_SECONDS) -> bool:
    """Tell Optuna what ended and start new points. Another process advancing the sweep may not have
    seen what ended here, so this waits for its turn (up to `wait_seconds`); False if it never came."""
    deadline = time.monotonic() + wait_seconds
    while True:
        with sessions.begin() as session:
            token = locks.acquire(session, Sweep.lock, Sweep.lock_until, sweep_id)
        if token is not None:
            break
        if time.monotonic() >= deadline:
            return False  # the periodic top-up will see to it
        time.sleep(0.05)
    try:
        _advance(sessions, sweep_id, settings)
    finally:
        with sessions.begin() as session:
            locks.release(session, Sweep.lock, Sweep.lock_until, sweep_id, token)
    return True


def _advance(sessions: sessionmaker[Session], sweep_id: int, settings: Settings) -> None:
    with sessions() as session:
        sweep = session.get(Sweep, sweep_id)
        by_trial = _jobs_by_trial(session, sweep_id)
    study = studies.load_study(sweep, settings.database_url)
    _tell_finished(study, sweep, by_trial)
    if sweep.status != SweepStatus.running:
        return
    request = SweepRequest.model_validate(sweep.request)
    active = sum(1 for trial_jobs in by_trial.values() for j in trial_jobs if j.status not in TERMINAL)
    started = len(by_trial) + len(sweep.refused_points or [])
    unstarted = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)) if t.number not in by_trial]
    dists = studies.distributions(request)
    unsent: list[int] = []
    loaded: dict[int, RawData] = {}
    fresh: list[studies.NewTrial] = []
    while started < sweep.n_trials and active + sweep.seeds <= max(sweep.max_parallel, sweep.seeds):
        if not unstarted and not fresh and request.strategy == "grid":  # a grid's next points in one go, not ask by ask
            room = max(1, (max(sweep.max_parallel, sweep.seeds) - active) // sweep.seeds)
            fresh = studies.grid_trials(study, request, settings.database_url, min(sweep.n_trials - started, room))
        trial = unstarted.pop(0) if unstarted else fresh.pop(0) if fresh else study.ask(dists)
        params = studies.decode_params(trial.params)
        with sessions.begin() as session:
            try:
                checked = _check_point(session, sweep, request, params, settings, loaded)
            except (SpecError, OverLimit) as exc:  # a sampled point no job may be: reported, and pruned
                _refuse(session, sweep_id, trial.number, params, exc)
                refused = True
            else:
                job_ids = [_create_job(session, sweep, request, trial.number, seed_index, params, settings, point)
                           for seed_index, point in enumerate(checked)]
                sweeps.trial_created(session, sweep_id)
                refused = False
        started += 1
        if refused:
            study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
            continue
        unsent += job_ids
        if not request.stack:  # one job at a time: each starts as soon as it exists
            _send(sessions, unsent, settings)
        by_trial[trial.number] = []
        active += sweep.seeds
    # A stacking sweep sends its new jobs together, so the first worker finds its siblings queued and
    # claims them as one stack (each has its outbox row: a crash before this only delays them).
    _send(sessions, unsent, settings)
    with sessions.begin() as session:
        if started >= sweep.n_trials and _all_ended(session, sweep_id):
            sweeps.finish(session, sweep_id, studies.importance(study))


def _send(sessions: sessionmaker[Session], job_ids: list[int], settings: Settings) -> None:
    if job_ids:
        with sessions.begin() as session:
            outbox.send(session, job_ids, settings)
        job_ids.clear()


def _jobs_by_trial(session: Session, sweep_id: int) -> dict[int, list[Job]]:
    by_trial: dict[int, list[Job]] = {}
    for job in session.scalars(select(Job).where(Job.sweep_id == sweep_id)):
        by_trial.setdefault(job.sweep_trial, []).append(job)
    return by_trial


def _all_ended(session: Session, sweep_id: int) -> bool:
    unfinished = select(func.count()).select_from(Job).where(Job.sweep_id == sweep_id, Job.status.notin_(TERMINAL))
    return session.scalar(unfinished) == 0


def _check_point(session: Session, sweep: Sweep, request: SweepRequest, params: dict[str, Any], settings: Settings,
                 loaded: dict[int, RawData]) -> list[Checked]:
    """Every seed of a point through the checks a job submitted alone passes, and the owner's quota for all of them.

    `loaded`: each seed's data, loaded once per advance when the space leaves the data alone (a
    builtin set is generated from the seed: seeds differ, points of one seed do not)."""
    meta = {"name": sweep.name or f"sweep-{sweep.id}", "experiment": sweep.experiment, "tags": request.tags}
    shares_data = request.shares_data
    checked = []
    for seed_index in range(sweep.seeds):
        document = resolve(session, sweep.owner, {**job_spec(request, params, seed_index), **meta})  # an uploaded dataset's reference
        parsed = parse_document(document)
        if shares_data and seed_index not in loaded:
            loaded[seed_index] = raw_data(session, parsed)
        own = None if shares_data or parsed.data.dataset is None else raw_data(session, parsed)  # a searched dataset: read (cached) per point
        checked.append(check_job(document, settings, parsed=parsed, raw=loaded.get(seed_index) if shares_data else own))
    reserve(session, sweep.owner, sum(c.record_bytes for c in checked), settings)  # rolled back with the point if it fails
    return checked


def _refuse(session: Session, sweep_id: int, trial: int, params: dict[str, Any], exc: SpecError | OverLimit) -> None:
    errors = exc.errors if isinstance(exc, SpecError) else [(exc.field, str(exc))]
    sweep = session.get(Sweep, sweep_id)
    entry = {"trial": trial, "params": params, "field": errors[0][0], "reason": "; ".join(reason for _, reason in errors)}
    if isinstance(exc, OverLimit):
        entry["limit"] = {"name": exc.name, "value": exc.value, "requested": exc.requested}
    sweep.refused_points = [*(sweep.refused_points or []), entry]
    sweep.trials_created += 1


def job_name(sweep: Sweep, request: SweepRequest, params: dict[str, Any], seed_index: int) -> str:
    """A sweep's job named by what varies: `lr-x-batch lr=0.1 batch_size=full seed 2` (the seed only when
    the sweep runs more than one), so lists and MLflow's run names say which point a job is."""
    point = " ".join(f"{param_name(path)}={category_label(value)}" for path, value in params.items())
    seed = f" seed {seed_index}" if request.seeds > 1 else ""
    base = sweep.name or f"sweep-{sweep.id}"
    return f"{base[:MAX_NAME // 2]} {point}"[:MAX_NAME - len(seed)] + seed


def _create_job(session: Session, sweep: Sweep, request: SweepRequest, trial: int, seed_index: int, params: dict[str, Any],
                settings: Settings, point: Checked) -> int:
    """The queued job of one seed of one point (its outbox row with it)."""
    limits = sweep.request.get("time_limits")
    job = jobs.create_job(session, point.spec, total_steps=point.plan.total_steps, n_params=point.plan.n_params, owner=sweep.owner,
                          time_limits=TimeLimits(limits["soft_seconds"], limits["hard_seconds"]) if limits else None,
                          name=job_name(sweep, request, params, seed_index), experiment=sweep.experiment,
                          tags=request.tags, sweep_id=sweep.id, sweep_trial=trial, sweep_seed=seed_index, sweep_params=params,
                          mirrored=bool(settings.mlflow_tracking_uri), reserved_bytes=point.record_bytes,
                          stack_key=stack_key(point.parsed, point.plan) if request.stack else None)
    return job.id


def _tell_finished(study: optuna.Study, sweep: Sweep, by_trial: dict[int, list[Job]]) -> None:
    """Tell Optuna each trial whose seeds all ended: the mean objective, pruned, or failed."""
    told = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    for number, trial_jobs in by_trial.items():
        if number in told or len(trial_jobs) < sweep.seeds or any(j.status not in TERMINAL for j in trial_jobs):
            continue
        values = [objective_value(j, sweep.objective_metric) for j in trial_jobs if j.status == JobStatus.succeeded]
        values = [v for v in values if v is not None]
        if any((j.error or {}).get("reason") == "early_stopped" for j in trial_jobs):
            study.tell(number, state=optuna.trial.TrialState.PRUNED)
        elif values:
            study.tell(number, sum(values) / len(values))
        else:
            study.tell(number, state=optuna.trial.TrialState.FAIL)


def cancel(session: Session, sweep_id: int) -> None:
    """running -> cancelled, and every unfinished job of it cancelled."""
    sweeps.cancel(session, sweep_id)
    for job_id in session.scalars(select(Job.id).where(Job.sweep_id == sweep_id, Job.status.notin_(TERMINAL))).all():
        jobs.cancel(session, job_id)
