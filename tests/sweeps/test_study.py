"""The sweep's Optuna study: its storage is built once per process, however often a running job
reports to the pruner, and only Optuna's public API is used."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from services.jobs.time_limits import TimeLimits
from services.migrate import upgrade
from services.store import jobs
from services.store.db import session_factory
from services.store.models import Job, Sweep
from services.sweeps import advance, study
from services.sweeps.request import parse_request
from tests.support.databases import both_databases, settings_for
from tests.support.specs import small
from worker.sweep_hooks import EarlyStopping

ROOT = Path(__file__).resolve().parents[2]


@both_databases
def test_reports_from_a_training_job_reuse_one_storage(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    body = {"base": small(), "space": {"optimizer.lr": [0.01, 0.02, 0.03]}, "max_parallel": 3,
            "early_stop": {"rule": "median", "grace_steps": 0}}
    with sessions.begin() as s:
        sweep_id = advance.create_sweep(s, parse_request(body), TimeLimits(60, 120)).id
    advance.advance(sessions, sweep_id, settings)
    built = study.storage.cache_info().misses
    with sessions() as s:
        job_id = s.scalar(select(Job.id).where(Job.sweep_id == sweep_id, Job.sweep_trial == 0))
    with sessions.begin() as s:
        job = jobs.claim_for_training(s, job_id)
    hook = EarlyStopping.for_job(sessions, job, settings)
    stops = [hook.should_stop(step, 1.0 / (step + 1)) for step in range(50)]
    assert study.storage.cache_info().misses == built  # 50 reports, no new storage
    assert stops == [False] * 50  # the first trial: nothing to compare it with yet
    with sessions() as s:
        trial = study.load_study(s.get(Sweep, sweep_id), database_url).get_trials(deepcopy=False)[0]
    assert trial.intermediate_values == {step: 1.0 / (step + 1) for step in range(50)}
    assert job.sweep_trial == trial.number


def test_no_code_reaches_into_optunas_private_storage():
    offenders = [str(p.relative_to(ROOT)) for folder in ("services", "worker") for p in (ROOT / folder).rglob("*.py")
                 if re.search(r"\._storage\b|\._study_id\b|\._trial_id\b", p.read_text())]
    assert offenders == []


@both_databases
def test_a_grid_is_made_point_by_point_once_each_across_advances_and_beside_grid_sampler_trials(database_url):
    import optuna

    upgrade(database_url)
    sessions = session_factory(database_url)
    space = {"optimizer.lr": [0.01, 0.02, 0.03, 0.04], "batch_size": [4, 8, 16]}
    request = parse_request({"base": small(), "space": space, "max_parallel": 5, "stack": False})
    with sessions.begin() as s:
        sweep_row = advance.create_sweep(s, request, TimeLimits(60, 120))
    with sessions() as s:
        found = study.load_study(s.get(Sweep, sweep_row.id), database_url)
    asked = found.ask(study.distributions(request))  # one trial as GridSampler makes it (an older version's way)
    made = study.grid_trials(found, request, database_url, 4)
    assert [t.number for t in made] == [1, 2, 3, 4] and all(list(t.params) == list(space) for t in made)  # the space's order
    rest = study.grid_trials(found, request, database_url, 100)
    points = [tuple(sorted(t.params.items())) for t in [*made, *rest]] + [tuple(sorted(asked.params.items()))]
    assert len(points) == 12 and len(set(points)) == 12  # every point of the 4 × 3 grid, once
    assert study.grid_trials(found, request, database_url, 5) == []  # exhausted
    stored = found.get_trials(deepcopy=False)
    assert len({t.system_attrs["grid_id"] for t in stored}) == 12 and all(t.state == optuna.trial.TrialState.RUNNING for t in stored)
    assert [t.number for t in stored] == list(range(12))


def test_the_storage_on_sqlite_connects_as_the_store_does(tmp_path):
    """Optuna's connections get the store's settings: a commit waits on no full sync of the file, a busy file is waited for."""
    url = f"sqlite:///{tmp_path / 'bplab.db'}"
    upgrade(url)
    store = study.storage(url)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (FULL is 2)
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
