"""Advancing a sweep in this process, on both databases, without a worker: the jobs of each point
are created all at once or not at all, a point Optuna handed out before a crash gets its jobs on the
next advance, and the sweep finishes with every point told."""

from __future__ import annotations

import optuna
import pytest
from sqlalchemy import func, select

from engine.spec import SEED_MAX, SpecError
from services.jobs.time_limits import TimeLimits
from services.migrate import upgrade
from services.store import jobs
from services.store.db import session_factory
from services.store.models import Job, JobStatus, Sweep, SweepStatus
from services.sweeps import advance, study
from services.sweeps.request import SweepRequest, parse_request
from tests.support.databases import both_databases, settings_for
from tests.support.specs import small

GRID = {"base": small(), "space": {"optimizer.lr": [0.01, 0.02, 0.03]}, "seeds": 2, "max_parallel": 4}


def new_sweep(sessions, request: SweepRequest) -> int:
    with sessions.begin() as s:
        return advance.create_sweep(s, request, TimeLimits(60, 120)).id


def finish_active(sessions, value: float = 0.5) -> int:
    """End every queued job of the store as a worker would, with `val_loss` in its summary."""
    with sessions() as s:
        queued = list(s.scalars(select(Job.id).where(Job.status == JobStatus.queued)))
    for job_id in queued:
        with sessions.begin() as s:
            lease = jobs.claim(s, job_id)
            jobs.finish(s, job_id, lease, JobStatus.succeeded, summary={"final_val_loss": value + job_id / 1000})
    return len(queued)


def count_jobs(sessions, sweep_id: int) -> dict[int, int]:
    with sessions() as s:
        return dict(s.execute(select(Job.sweep_trial, func.count()).where(Job.sweep_id == sweep_id).group_by(Job.sweep_trial)).all())


@both_databases
def test_a_point_handed_out_before_a_crash_gets_its_jobs_and_the_sweep_finishes(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    request = parse_request(GRID)
    sweep_id = new_sweep(sessions, request)
    with sessions() as s:
        orphan = study.load_study(s.get(Sweep, sweep_id), database_url).ask(study.distributions(request))  # then the crash
    assert advance.advance(sessions, sweep_id, settings)
    assert count_jobs(sessions, sweep_id) == {orphan.number: 2, orphan.number + 1: 2}  # the orphan first, whole
    while finish_active(sessions):
        assert advance.advance(sessions, sweep_id, settings)
    with sessions() as s:
        sweep = s.get(Sweep, sweep_id)
        assert sweep.status is SweepStatus.finished and sweep.trials_created == 3
        trials = study.load_study(sweep, database_url).get_trials(deepcopy=False)
    assert count_jobs(sessions, sweep_id) == {0: 2, 1: 2, 2: 2}
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3  # every point told
    assert sorted(t.params["optimizer.lr"] for t in trials) == [0.01, 0.02, 0.03]


@both_databases
def test_the_jobs_of_a_point_are_created_together_or_not_at_all(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    body = {**GRID, "base": small(seed=SEED_MAX)}  # its second seed is past the largest: the point cannot be created whole
    with pytest.raises(SpecError, match="seeds"):
        parse_request(body)  # refused when submitted ...
    sweep_id = new_sweep(sessions, SweepRequest.model_validate({**body, "seeds": 1}))
    with sessions.begin() as s:  # ... and should a row still ask for a second seed, the point is never half-created
        s.get(Sweep, sweep_id).seeds = 2
    advance.advance(sessions, sweep_id, settings)
    with sessions() as s:
        sweep = s.get(Sweep, sweep_id)
        assert count_jobs(sessions, sweep_id) == {} and sweep.trials_created == 3  # every point refused, none half-created
        assert [r["field"] for r in sweep.refused_points] == ["seed"] * 3 and "less than or equal to" in sweep.refused_points[0]["reason"]
        assert sweep.lock is None and sweep.status == SweepStatus.finished  # released, and nothing left to wait for


@both_databases
def test_only_one_process_advances_a_sweep_at_a_time(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    sweep_id = new_sweep(sessions, parse_request(GRID))
    from services.store import locks

    with sessions.begin() as s:
        token = locks.acquire(s, Sweep.lock, Sweep.lock_until, sweep_id)
    assert not advance.advance(sessions, sweep_id, settings, wait_seconds=0.2) and count_jobs(sessions, sweep_id) == {}
    with sessions.begin() as s:
        locks.release(s, Sweep.lock, Sweep.lock_until, sweep_id, token)
    assert advance.advance(sessions, sweep_id, settings) and sum(count_jobs(sessions, sweep_id).values()) == 4
