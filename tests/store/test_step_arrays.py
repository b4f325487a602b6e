"""Full gradients and traces of recorded steps on both databases: written and read back exactly (no
pickle: .npz without objects, JSON), rewritten in place, one statement for several jobs, and cut back
to a step for a retry."""

from __future__ import annotations

import numpy as np
import pytest

from services.migrate import upgrade
from services.store import step_arrays
from services.store.db import session_factory
from tests.support.databases import both_databases
from tests.support.store import new_job


@both_databases
def test_arrays_round_trip_are_replaced_and_truncated(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    rng = np.random.default_rng(0)
    gradients = {"dense_1.weight": rng.standard_normal((3, 2)), "dense_1.bias": rng.standard_normal(3).astype(np.float32)}
    trace = {"layers": [{"delta": [[0.5364353017406441]]}], "loss": 0.76881}
    with sessions.begin() as s:
        a, b = new_job(s), new_job(s)
        step_arrays.write_of(s, {a: [("gradients", 0, step_arrays.encode_gradients(gradients)),
                                     ("trace", 0, step_arrays.encode_trace(trace)), ("gradients", 5, b"old")],
                                 b: [("gradients", 0, step_arrays.encode_gradients({"w": np.zeros(2)}))]})
    with sessions.begin() as s:
        step_arrays.write(s, a, [("gradients", 5, step_arrays.encode_gradients(gradients))])  # replaced, not added
    with sessions() as s:
        back = step_arrays.decode_gradients(step_arrays.read(s, a, "gradients", 0))
        assert back.keys() == gradients.keys()
        for name, array in gradients.items():
            assert back[name].dtype == array.dtype and np.array_equal(back[name], array)
        assert step_arrays.decode_trace(step_arrays.read(s, a, "trace", 0)) == trace
        assert step_arrays.steps(s, a, "gradients") == [0, 5] and step_arrays.steps(s, b, "gradients") == [0]
        assert step_arrays.read(s, a, "gradients", 1) is None
    with sessions.begin() as s:
        step_arrays.truncate(s, a, 5)
    with sessions() as s:
        assert step_arrays.steps(s, a, "gradients") == [0] and step_arrays.steps(s, b, "gradients") == [0]


def test_no_pickle_goes_in_or_comes_out():
    with pytest.raises(ValueError, match="allow_pickle"):
        step_arrays.decode_gradients(step_arrays.encode_gradients({"objects": np.array([{"a": 1}], dtype=object)}))
    with pytest.raises(ValueError, match="JSON compliant"):
        step_arrays.encode_trace({"loss": float("nan")})  # JSON only, and no NaN in it
