"""The store on both databases: migrations up and down, chunked metrics, lease fencing."""

from __future__ import annotations

import numpy as np
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from services import jobs, metrics
from services.db import get_engine, session_factory
from services.metrics import Chunk, downsample
from services.migrate import upgrade
from services.models import CHUNK_POINTS, JobStatus
from services.settings import ROOT

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@both_databases
def test_migrations_upgrade_and_downgrade(database_url):
    upgrade(database_url)
    tables = set(inspect(get_engine(database_url)).get_table_names())
    assert {"jobs", "job_payloads", "job_tags", "metric_chunks", "step_arrays", "bplab_alembic_version"} <= tables
    config_check = Config(str(ROOT / "alembic.ini"))
    config_check.attributes["database_url"] = database_url
    command.check(config_check)  # the models and the migrations agree
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    command.downgrade(config, "base")
    assert set(inspect(get_engine(database_url)).get_table_names()) <= {"bplab_alembic_version"}
    upgrade(database_url)


def _job(session) -> int:
    job = jobs.create_job(session, {"spec": "x"}, total_steps=10, n_params=1)
    session.commit()
    return job.id


@both_databases
def test_chunks_are_rewritten_in_place_and_read_back_across_boundaries(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions() as s:
        job_id = _job(s)
        first = Chunk("loss", 0, list(range(10)), [float(i) for i in range(10)])
        metrics.write_chunks(s, job_id, [first])
        s.commit()
        first.steps += list(range(10, CHUNK_POINTS))
        first.values += [float(i) for i in range(10, CHUNK_POINTS)]
        second = Chunk("loss", 1, [CHUNK_POINTS, CHUNK_POINTS + 5], [1e-300, -2.5])
        metrics.write_chunks(s, job_id, [first, second])
        metrics.write_chunks(s, job_id, [second])  # a re-sent flush changes nothing
        s.commit()
        steps, values = metrics.read(s, job_id, ["loss"])["loss"]
        assert steps.tolist() == list(range(CHUNK_POINTS)) + [CHUNK_POINTS, CHUNK_POINTS + 5]
        assert values[-2:].tolist() == [1e-300, -2.5]
        window = metrics.read(s, job_id, ["loss"], start=998, end=1004)["loss"]
        assert window[0].tolist() == [998, 999, 1000]
        assert metrics.keys(s, job_id) == ["loss"]


@both_databases
def test_lease_fences_writes_and_transitions(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions() as s:
        job_id = _job(s)
        lease = jobs.claim(s, job_id)
        assert lease and jobs.claim(s, job_id) is None  # claimed once
        assert jobs.progress(s, job_id, "someone-else", 3, 0.5) is None
        assert jobs.progress(s, job_id, lease, 3, 0.5) is False
        s.commit()
        assert jobs.cancel(s, job_id) == "running"
        assert jobs.progress(s, job_id, lease, 4, 0.4) is True  # the worker sees the request
        s.commit()
        assert not jobs.finish(s, job_id, "someone-else", JobStatus.succeeded)
        assert jobs.finish(s, job_id, lease, JobStatus.cancelled)
        assert jobs.get_job(s, job_id).status == "cancelled"
        assert not jobs.finish(s, job_id, lease, JobStatus.succeeded)  # terminal states are final


def test_downsample_keeps_first_last_and_extremes():
    rng = np.random.default_rng(0)
    values = rng.normal(size=10_000)
    values[4321] = 50.0
    values[777] = -50.0
    steps = np.arange(10_000)
    s, v = downsample(steps, values, 100)
    assert len(s) <= 100 and s[0] == 0 and s[-1] == 9999
    assert 50.0 in v and -50.0 in v
    assert np.all(np.diff(s) > 0)
    same = downsample(steps[:50], values[:50], 100)
    assert same[0].tolist() == list(range(50))
