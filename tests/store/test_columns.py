"""Every moment the store hands back is timezone-aware UTC, on SQLite as on PostgreSQL, and the
statuses are enum members, not free strings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from services.jobs.time_limits import TimeLimits
from services.migrate import upgrade
from services.store import jobs
from services.store.db import session_factory
from services.store.models import Job, JobStatus, MirrorState, Sweep, SweepStatus
from services.sweeps.advance import create_sweep
from services.sweeps.request import parse_request
from tests.support.databases import both_databases
from tests.support.specs import small
from tests.support.store import new_job


@both_databases
def test_moments_come_back_aware_in_utc_and_statuses_as_enums(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        job_id = new_job(s)
        sweep_id = create_sweep(s, parse_request({"base": small(), "space": {"optimizer.lr": [0.1]}}), TimeLimits(10, 20)).id
    with sessions.begin() as s:
        jobs.claim(s, job_id)
    with sessions() as s:
        job, sweep = s.get(Job, job_id), s.get(Sweep, sweep_id)
        for moment in (job.created_at, job.started_at, job.heartbeat_at, sweep.created_at):
            assert moment.tzinfo is not None and moment.utcoffset().total_seconds() == 0
            assert abs((datetime.now(UTC) - moment).total_seconds()) < 60
        assert job.status is JobStatus.running and job.mirror_state is MirrorState.pending
        assert sweep.status is SweepStatus.running
        assert s.scalar(select(Job.id).where(Job.status == "running")) == job_id  # stored as the value


@both_databases
def test_a_naive_moment_is_refused(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        job_id = new_job(s)
    with pytest.raises(Exception, match="naive datetime"), sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=datetime(2026, 1, 1)))
