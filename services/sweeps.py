"""Sweeps: a base job spec, a search space over any spec field (by dotted path), and Optuna's
samplers and pruners deciding the points through its ask-and-tell interface. Optuna's study lives in
our database. No HTTP here: the API and the worker both call `create_sweep` / `advance`.

A point of the space is an Optuna trial; each trial runs as `seeds` jobs (seeds base+0, base+1, …)
and is told the mean objective over them. At most `max_parallel` jobs are queued or running; `advance`
tops them up whenever a job of the sweep ends (and from the periodic beat task).
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import uuid
from datetime import timedelta
from typing import Any, Callable, Literal, Union

import optuna
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from engine.spec import SpecError, errors_from_validation

from . import jobs
from .models import LOCAL_OWNER, TERMINAL_VALUES, Job, JobStatus, Sweep, utcnow
from .time_limits import TimeLimits, TimeLimitsRequest

optuna.logging.set_verbosity(optuna.logging.WARNING)
PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LogUniform(_Strict):
    log_uniform: tuple[float, float]


class Uniform(_Strict):
    uniform: tuple[float, float]


class IntRange(_Strict):
    int: tuple[int, int]


class Choice(_Strict):
    choice: list[Any] = Field(min_length=1)


Dimension = Union[list[Any], LogUniform, Uniform, IntRange, Choice]


class Objective(_Strict):
    metric: str = "val_loss"
    goal: Literal["minimize", "maximize"] = "minimize"


class EarlyStop(_Strict):
    rule: Literal["median", "asha"]
    grace_steps: int = Field(default=0, ge=0)


class SweepRequest(_Strict):
    name: str | None = Field(default=None, max_length=200)
    experiment: str = Field(default="default", min_length=1, max_length=200)
    base: dict[str, Any]
    strategy: Literal["grid", "random", "tpe"] = "grid"
    space: dict[str, Dimension] = Field(min_length=1)
    trials: int | None = Field(default=None, ge=1)
    seeds: int = Field(default=1, ge=1, le=100)
    objective: Objective = Field(default_factory=Objective)
    max_parallel: int = Field(default=4, ge=1, le=1000)
    early_stop: EarlyStop | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    time_limits: TimeLimitsRequest | None = None  # for each of its jobs

    @model_validator(mode="after")
    def _fits_strategy(self) -> "SweepRequest":
        for path, dim in self.space.items():
            if self.strategy == "grid" and not isinstance(dim, list):
                raise ValueError(f"space.{path}: grid sweeps take lists of values")
            if isinstance(dim, list) and not dim:
                raise ValueError(f"space.{path}: empty list")
            for bounds in (getattr(dim, "log_uniform", None), getattr(dim, "uniform", None), getattr(dim, "int", None)):
                if bounds is not None and not bounds[0] < bounds[1]:
                    raise ValueError(f"space.{path}: the low bound must be below the high one")
            if isinstance(dim, LogUniform) and dim.log_uniform[0] <= 0:
                raise ValueError(f"space.{path}: log_uniform bounds must be > 0")
        if self.strategy != "grid" and self.trials is None:
            raise ValueError("trials: required by random and tpe sweeps")
        return self

    @property
    def n_trials(self) -> int:
        if self.strategy == "grid":
            return math.prod(len(v) for v in self.space.values())
        return self.trials


def parse_request(body: Any) -> SweepRequest:
    if not isinstance(body, dict):
        raise SpecError([("", "the sweep must be a JSON object")])
    try:
        return SweepRequest.model_validate(body)
    except ValidationError as exc:
        raise SpecError(errors_from_validation(exc)) from None


# -- points of the space ------------------------------------------------------------------------

def set_path(spec: dict, path: str, value: Any) -> dict:
    """A copy of `spec` with the field at `path` (`optimizer.lr`, `model.layers[0].units`) set."""
    out = copy.deepcopy(spec)
    target: Any = out
    steps: list[Any] = []
    for part in path.split("."):
        match = PATH_PART.fullmatch(part)
        if match is None:
            raise SpecError([(f"space.{path}", f"{part!r} is not a field name")])
        steps.append(match.group(1))
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    for step in steps[:-1]:
        try:
            if isinstance(step, int):
                target = target[step]
            else:
                target = target.setdefault(step, {})
        except (IndexError, KeyError, TypeError, AttributeError):
            raise SpecError([(f"space.{path}", f"the base spec has no {step!r} here")]) from None
    last = steps[-1]
    try:
        target[last] = value
    except (IndexError, TypeError):
        raise SpecError([(f"space.{path}", f"the base spec has no {last!r} here")]) from None
    return out


def distributions(request: SweepRequest) -> dict[str, optuna.distributions.BaseDistribution]:
    out = {}
    for path, dim in request.space.items():
        if isinstance(dim, list):
            out[path] = optuna.distributions.CategoricalDistribution(_categorical(dim))
        elif isinstance(dim, LogUniform):
            out[path] = optuna.distributions.FloatDistribution(*dim.log_uniform, log=True)
        elif isinstance(dim, Uniform):
            out[path] = optuna.distributions.FloatDistribution(*dim.uniform)
        elif isinstance(dim, IntRange):
            out[path] = optuna.distributions.IntDistribution(*dim.int)
        else:
            out[path] = optuna.distributions.CategoricalDistribution(_categorical(dim.choice))
    return out


def _categorical(values: list[Any]) -> tuple:
    """Optuna's categories must be None, bool, int, float or str: other values travel as JSON text."""
    import json

    return tuple(v if v is None or isinstance(v, (bool, int, float, str)) else "json:" + json.dumps(v) for v in values)


def _decode(value: Any) -> Any:
    import json

    return json.loads(value[5:]) if isinstance(value, str) and value.startswith("json:") else value


def corner_points(request: SweepRequest) -> list[dict[str, Any]]:
    """Points checked before anything is queued: the whole grid, or each dimension's bounds and choices."""
    if request.strategy == "grid":
        keys = list(request.space)
        return [dict(zip(keys, combo)) for combo in itertools.product(*request.space.values())]
    points = []
    for path, dim in request.space.items():
        values = dim if isinstance(dim, list) else dim.choice if isinstance(dim, Choice) else list(
            getattr(dim, "log_uniform", None) or getattr(dim, "uniform", None) or dim.int)
        points += [{path: v} for v in values]
    return points


def job_spec(request: SweepRequest, params: dict[str, Any], seed_index: int) -> dict:
    spec = request.base
    for path, value in params.items():
        spec = set_path(spec, path, value)
    spec = copy.deepcopy(spec)
    spec["seed"] = int(request.base.get("seed", 0)) + seed_index
    return spec


# -- the study ----------------------------------------------------------------------------------

class _AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler stops the study when the grid is exhausted, which only works inside
    `study.optimize`; with ask-and-tell we count the points ourselves."""

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
        return None


def storage(database_url: str) -> optuna.storages.RDBStorage:
    url = "postgresql+psycopg://" + database_url[len("postgresql://"):] if database_url.startswith("postgresql://") else database_url
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def study_name(sweep_id: int) -> str:
    return f"bplab-sweep-{sweep_id}"


def load_study(sweep: Sweep, database_url: str) -> optuna.Study:
    request = SweepRequest.model_validate(sweep.request)
    seed = int(request.base.get("seed", 0))
    if request.strategy == "grid":
        sampler = _AskTellGridSampler({p: list(d.choices) for p, d in distributions(request).items()}, seed=seed)
    elif request.strategy == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, request.n_trials // 4)))
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if request.early_stop is not None:
        grace = request.early_stop.grace_steps
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=grace) if request.early_stop.rule == "median"
                  else optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, grace)))
    return optuna.create_study(storage=storage(database_url), study_name=study_name(sweep.id), sampler=sampler, pruner=pruner,
                               direction=request.objective.goal, load_if_exists=True)


def create_sweep(session: Session, request: SweepRequest, time_limits: TimeLimits, owner: str = LOCAL_OWNER) -> Sweep:
    """Insert a running sweep whose jobs will get `time_limits` (the caller commits)."""
    stored = request.model_dump(mode="json")
    stored["time_limits"] = {"soft_seconds": time_limits.soft, "hard_seconds": time_limits.hard}
    sweep = Sweep(name=request.name, owner=owner, experiment=request.experiment, strategy=request.strategy, status="running",
                  request=stored, n_trials=request.n_trials, seeds=request.seeds,
                  max_parallel=request.max_parallel, objective_metric=request.objective.metric,
                  objective_goal=request.objective.goal, created_at=utcnow(), trials_created=0)
    session.add(sweep)
    session.flush()
    return sweep


# -- advancing ----------------------------------------------------------------------------------

def _lock(session: Session, sweep_id: int) -> str | None:
    token, now = str(uuid.uuid4()), utcnow()
    result = session.execute(update(Sweep).where(Sweep.id == sweep_id, or_(Sweep.lock.is_(None), Sweep.lock_until < now))
                             .values(lock=token, lock_until=now + timedelta(seconds=120)))
    session.commit()
    return token if result.rowcount == 1 else None


def objective_value(job: Job, metric: str) -> float | None:
    """The job's final value of the objective metric (from its summary), if it has one."""
    summary = job.summary or {}
    for key in (f"final_{metric}", metric):
        value = summary.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def advance(session: Session, sweep_id: int, database_url: str, enqueue: Callable[[int], None],
            create_job: Callable[..., Job]) -> Sweep:
    """Tell Optuna the trials whose jobs all ended, then ask for new points while there are free slots."""
    token = _lock(session, sweep_id)
    sweep = session.get(Sweep, sweep_id)
    if token is None:
        return sweep
    try:
        study = load_study(sweep, database_url)
        request = SweepRequest.model_validate(sweep.request)
        sweep_jobs = list(session.scalars(select(Job).where(Job.sweep_id == sweep_id)))
        _tell_finished(study, sweep, sweep_jobs)
        if sweep.status == "running":
            active = sum(1 for j in sweep_jobs if j.status not in TERMINAL_VALUES)
            dists = distributions(request)
            while sweep.trials_created < sweep.n_trials and active + sweep.seeds <= max(sweep.max_parallel, sweep.seeds):
                trial = study.ask(dists)
                params = {k: _decode(v) for k, v in trial.params.items()}
                for seed_index in range(sweep.seeds):
                    job = create_job(job_spec(request, params, seed_index), sweep=sweep, trial=trial.number,
                                     seed_index=seed_index, params=params)
                    session.commit()
                    enqueue(job.id)
                sweep.trials_created += 1
                active += sweep.seeds
                session.commit()
            all_jobs = session.scalar(select(func.count()).select_from(Job).where(Job.sweep_id == sweep_id))
            ended = session.scalar(select(func.count()).select_from(Job).where(Job.sweep_id == sweep_id,
                                                                               Job.status.in_(sorted(TERMINAL_VALUES))))
            if sweep.trials_created >= sweep.n_trials and ended == all_jobs:
                sweep.status, sweep.finished_at = "finished", utcnow()
                sweep.importance = importance(study)
        session.commit()
        return sweep
    finally:
        session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.lock == token).values(lock=None, lock_until=None))
        session.commit()


def _tell_finished(study: optuna.Study, sweep: Sweep, sweep_jobs: list[Job]) -> None:
    told = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    by_trial: dict[int, list[Job]] = {}
    for job in sweep_jobs:
        by_trial.setdefault(job.sweep_trial, []).append(job)
    for number, trial_jobs in by_trial.items():
        if number in told or len(trial_jobs) < sweep.seeds or any(j.status not in TERMINAL_VALUES for j in trial_jobs):
            continue
        values = [objective_value(j, sweep.objective_metric) for j in trial_jobs if j.status == JobStatus.succeeded.value]
        values = [v for v in values if v is not None]
        if any((j.error or {}).get("reason") == "early_stopped" for j in trial_jobs):
            study.tell(number, state=optuna.trial.TrialState.PRUNED)
        elif values:
            study.tell(number, sum(values) / len(values))
        else:
            study.tell(number, state=optuna.trial.TrialState.FAIL)


def importance(study: optuna.Study) -> dict[str, float] | None:
    """Optuna's parameter importances (fANOVA) for the objective, once two points have values."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or not any(len({repr(t.params.get(k)) for t in complete}) > 1 for k in complete[0].params):
        return None
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):
        return None


def report(database_url: str, sweep: Sweep, trial_number: int, step: int, value: float) -> bool:
    """Report a job's objective as it trains; True when the pruner says stop."""
    study = load_study(sweep, database_url)
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial_number)  # noqa: SLF001
    trial = optuna.Trial(study, trial_id)
    trial.report(value, step)
    return trial.should_prune()


def cancel(session: Session, sweep_id: int) -> None:
    session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status == "running").values(status="cancelled", finished_at=utcnow()))
    session.commit()
    for job_id in session.scalars(select(Job.id).where(Job.sweep_id == sweep_id, Job.status.notin_(sorted(TERMINAL_VALUES)))):
        jobs.cancel(session, job_id)


def leaderboard(sweep: Sweep, sweep_jobs: list[Job]) -> list[dict[str, Any]]:
    """One row per point: mean ± std over seeds of the objective, mean final loss, diverged count;
    best first (points without a value last)."""
    import statistics

    rows = []
    by_trial: dict[int, list[Job]] = {}
    for job in sweep_jobs:
        by_trial.setdefault(job.sweep_trial, []).append(job)
    for number, trial_jobs in sorted(by_trial.items()):
        values = [v for v in (objective_value(j, sweep.objective_metric) for j in trial_jobs) if v is not None]
        losses = [j.summary["final_loss"] for j in trial_jobs if (j.summary or {}).get("final_loss") is not None]
        states = {j.status for j in trial_jobs}
        rows.append({
            "trial": number, "params": trial_jobs[0].sweep_params, "jobs": sorted(j.id for j in trial_jobs),
            "seeds_done": sum(1 for j in trial_jobs if j.status in TERMINAL_VALUES),
            "objective_mean": statistics.fmean(values) if values else None,
            "objective_std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
            "final_loss_mean": statistics.fmean(losses) if losses else None,
            "diverged": sum(1 for j in trial_jobs if j.status == JobStatus.diverged.value),
            "status": "running" if states - TERMINAL_VALUES else ("early_stopped" if any(
                (j.error or {}).get("reason") == "early_stopped" for j in trial_jobs) else "done"),
        })
    sign = 1 if sweep.objective_goal == "minimize" else -1
    rows.sort(key=lambda r: (r["objective_mean"] is None, sign * (r["objective_mean"] or 0.0), r["trial"]))
    return rows


def job_factory(session: Session) -> Callable[..., Job]:
    """Creates the queued job of one seed of one point (the caller commits and enqueues)."""
    from engine.problem import plan
    from engine.spec import parse_spec

    def create(spec: dict, *, sweep: Sweep, trial: int, seed_index: int, params: dict) -> Job:
        sizes = plan(parse_spec(spec))
        request = sweep.request
        limits = request.get("time_limits")
        return jobs.create_job(session, spec, total_steps=sizes.total_steps, n_params=sizes.n_params, owner=sweep.owner,
                               time_limits=TimeLimits(limits["soft_seconds"], limits["hard_seconds"]) if limits else None,
                               name=f"{sweep.name or f'sweep-{sweep.id}'}-t{trial}-s{seed_index}", experiment=sweep.experiment,
                               tags=request.get("tags") or {}, sweep_id=sweep.id, sweep_trial=trial, sweep_seed=seed_index,
                               sweep_params=params)

    return create


def advance_sweep(session: Session, sweep_id: int, database_url: str, enqueue: Callable[[int], None]) -> Sweep:
    """`advance` with the standard job factory."""
    return advance(session, sweep_id, database_url, enqueue, job_factory(session))
