"""The sweep's Optuna study, kept in our own database: distributions of the space, the sampler and
pruner its request names, intermediate reports for pruning, and parameter importance.

Optuna's storage (an engine and its schema check) is built once per process and database, not on
every call: pruning reports arrive from inside the training loop; a worker builds it when it starts
(`warm`). On SQLite its connections get the store's own settings (services/store/db.py): without
them each of a sweep's tells waited on a full sync of the file. Only Optuna's public storage API is
used.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import optuna
import optuna.importance  # imported lazily by Optuna: 0.8 s (scikit-learn's and SciPy's parts) on a sweep's last job, once per process
from sqlalchemy import event

from ..store.db import sqlalchemy_url, sqlite_pragmas
from ..store.models import Sweep
from .request import Choice, IntRange, LogUniform, SweepRequest, Uniform

optuna.logging.set_verbosity(optuna.logging.WARNING)
JSON_PREFIX = "json:"


@functools.lru_cache(maxsize=16)
def storage(database_url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage in the service's database, one per process."""
    if not database_url.startswith("sqlite"):
        return optuna.storages.RDBStorage(sqlalchemy_url(database_url), engine_kwargs={"pool_pre_ping": True})
    store = optuna.storages.RDBStorage(database_url, engine_kwargs={"connect_args": {"timeout": 30}})
    event.listen(store.engine, "connect", sqlite_pragmas)
    store.engine.dispose()  # the connection its schema check opened had none of them
    return store


def warm(database_url: str) -> None:
    """Build the process's storage now (a third of a second), not when a sweep's job first needs it."""
    try:
        storage(database_url)
    except Exception:  # the database not there yet: the first sweep builds it
        logging.getLogger(__name__).warning("Optuna's storage not ready at start-up", exc_info=True)


def study_name(sweep_id: int) -> str:
    return f"bplab-sweep-{sweep_id}"


def distributions(request: SweepRequest) -> dict[str, optuna.distributions.BaseDistribution]:
    out = {}
    for path, dim in request.space.items():
        if isinstance(dim, list):
            out[path] = optuna.distributions.CategoricalDistribution(_categories(dim))
        elif isinstance(dim, LogUniform):
            out[path] = optuna.distributions.FloatDistribution(*dim.log_uniform, log=True)
        elif isinstance(dim, Uniform):
            out[path] = optuna.distributions.FloatDistribution(*dim.uniform)
        elif isinstance(dim, IntRange):
            out[path] = optuna.distributions.IntDistribution(*dim.int)
        elif isinstance(dim, Choice):
            out[path] = optuna.distributions.CategoricalDistribution(_categories(dim.choice))
    return out


def _categories(values: list[Any]) -> tuple:
    """Optuna's categories must be None, bool, int, float or str: other values travel as JSON text."""
    return tuple(v if v is None or isinstance(v, (bool, int, float, str)) else JSON_PREFIX + json.dumps(v) for v in values)


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's params as the spec takes them (JSON-encoded categories decoded)."""
    return {k: json.loads(v[len(JSON_PREFIX):]) if isinstance(v, str) and v.startswith(JSON_PREFIX) else v for k, v in params.items()}


class _AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler stops the study when the grid is exhausted, which only works inside
    `study.optimize`; with ask-and-tell we count the points ourselves."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: optuna.trial.TrialState, values: object) -> None:
        return None


def load_study(sweep: Sweep, database_url: str) -> optuna.Study:
    """The sweep's study with the sampler and pruner its request asks for (created on first use)."""
    request = SweepRequest.model_validate(sweep.request)
    seed = request.base_seed % 2**32  # the samplers' generators take 32-bit seeds; job seeds go to 2**63 - 1
    if request.strategy == "grid":
        sampler: optuna.samplers.BaseSampler = _AskTellGridSampler(
            {p: list(d.choices) for p, d in distributions(request).items()}, seed=seed)
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


@dataclass(frozen=True)
class NewTrial:
    number: int
    params: dict[str, Any]


def grid_trials(study: optuna.Study, request: SweepRequest, database_url: str, count: int) -> list[NewTrial]:
    """Up to `count` new trials of a grid, made with one read of the study and one insert each.

    `study.ask` re-reads every unfinished trial from the storage, and GridSampler reads them all
    again to find an unvisited point, so asking a grid point by point costs n² reads (3.5 s of a
    100-point grid's submission, measured). The trials are the ones GridSampler would make: its grid
    (the space by sorted name, shuffled by the sweep's seed), `grid_id` and `search_space` in their
    system attrs, so a study can mix them with trials GridSampler made; the unvisited points are taken
    in the grid's (shuffled) order."""
    dists = distributions(request)
    space = {name: list(dists[name].choices) for name in sorted(dists)}
    grids = list(itertools.product(*space.values()))
    np.random.RandomState(request.base_seed % 2**32 or 0).shuffle(grids)  # GridSampler's own shuffle of its grid
    trials = study.get_trials(deepcopy=False)
    taken = {t.system_attrs.get("grid_id") for t in trials}
    store = storage(database_url)
    study_id = store.get_study_id_from_name(study.study_name)
    made: list[NewTrial] = []
    for grid_id in (g for g in range(len(grids)) if g not in taken):
        if len(made) == count:
            break
        by_name = dict(zip(space, grids[grid_id], strict=True))
        params = {name: by_name[name] for name in dists}  # in the space's own order, as ask gives them (run names follow it)
        template = optuna.trial.FrozenTrial(
            number=-1, state=optuna.trial.TrialState.RUNNING, value=None, datetime_start=datetime.now(), datetime_complete=None,
            params=params, distributions=dict(dists), user_attrs={},
            system_attrs={"search_space": space, "grid_id": grid_id}, intermediate_values={}, trial_id=-1)
        new_id = store.create_new_trial(study_id, template_trial=template)
        # numbered in creation order, and the caller holds the sweep's lock: looked up once, then counted
        number = store.get_trial_number_from_id(new_id) if not made else made[0].number + len(made)
        made.append(NewTrial(number, params))
    return made


def trial_id(study: optuna.Study, database_url: str, trial_number: int) -> int:
    """Optuna's id of the study's trial `trial_number`."""
    store = storage(database_url)
    return store.get_trial_id_from_study_id_trial_number(store.get_study_id_from_name(study.study_name), trial_number)


def report(study: optuna.Study, database_url: str, trial: int, step: int, value: float) -> bool:
    """Report a job's objective at `step` for trial id `trial`; True when the pruner says stop."""
    store = storage(database_url)
    store.set_trial_intermediate_value(trial, step, value)
    return study.pruner.prune(study, store.get_trial(trial))


def importance(study: optuna.Study) -> dict[str, float] | None:
    """Optuna's parameter importances (fANOVA) for the objective, once two points have values."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or not any(len({repr(t.params.get(k)) for t in complete}) > 1 for k in complete[0].params):
        return None
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):
        return None
