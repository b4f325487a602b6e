"""The MLflow mirror's cursor on both databases: the points after it, however many keys and chunks
a job has (one OR term per key and chunk once broke SQLite past 1,000 terms)."""

from __future__ import annotations

import numpy as np

from services.migrate import upgrade
from services.store import metrics, mirror_cursor
from services.store.db import session_factory
from services.store.models import CHUNK_POINTS
from tests.support.databases import both_databases
from tests.support.store import new_job, write_series

KEYS, CHUNKS = 41, 27  # a digits job cancelled at step 26,266 had these




@both_databases
def test_points_after_the_cursor_for_41_keys_over_27_chunks(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        job_id = new_job(s)
    keys = [f"grad_norm/dense_{i}.weight" for i in range(KEYS)]
    steps = CHUNKS * CHUNK_POINTS - 734  # the last chunk partly filled
    write_series(sessions, job_id, keys, steps)
    cursor = {keys[0]: 0, keys[1]: 5 * CHUNK_POINTS + 17, keys[2]: steps}  # the rest not sent at all
    with sessions() as s:
        pending = mirror_cursor.points_after(s, job_id, cursor)
        stored = metrics.read(s, job_id)
    assert set(pending) == set(keys) - {keys[2]}  # a key sent to its end has nothing pending
    for key, (first, got_steps, got_values) in pending.items():
        start = cursor.get(key, 0)
        assert first == start and got_steps.tolist() == list(range(start, steps)), key
        assert np.array_equal(got_values, stored[key][1][start:]), key
