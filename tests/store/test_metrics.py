"""Chunked metric points on both databases: rewritten in place, read back across chunk boundaries,
downsampled with spikes kept."""

from __future__ import annotations

import numpy as np

from services.migrate import upgrade
from services.store import metrics
from services.store.db import session_factory
from services.store.metrics import Chunk, downsample
from services.store.models import CHUNK_POINTS
from tests.support.databases import both_databases
from tests.support.store import new_job


@both_databases
def test_chunks_are_rewritten_in_place_and_read_back_across_boundaries(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        job_id = new_job(s)
        first = Chunk("loss", 0, list(range(10)), [float(i) for i in range(10)])
        metrics.write_chunks(s, job_id, [first])
    with sessions.begin() as s:
        first.steps += list(range(10, CHUNK_POINTS))
        first.values += [float(i) for i in range(10, CHUNK_POINTS)]
        second = Chunk("loss", 1, [CHUNK_POINTS, CHUNK_POINTS + 5], [1e-300, -2.5])
        metrics.write_chunks(s, job_id, [first, second])
        metrics.write_chunks(s, job_id, [second])  # a re-sent flush changes nothing
    with sessions() as s:
        steps, values = metrics.read(s, job_id, ["loss"])["loss"]
        assert steps.tolist() == list(range(CHUNK_POINTS)) + [CHUNK_POINTS, CHUNK_POINTS + 5]
        assert values[-2:].tolist() == [1e-300, -2.5]
        window = metrics.read(s, job_id, ["loss"], start=998, end=1004)["loss"]
        assert window[0].tolist() == [998, 999, 1000]
        assert metrics.keys(s, job_id) == ["loss"]
        assert metrics.last_points(s, job_id) == {"loss": (CHUNK_POINTS + 5, -2.5)}


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
