"""A worker SIGKILLed while it trains a stacked sweep: the reaper requeues every member, a new worker
claims them again as one stack, each resumes from its own checkpoint, and every job ends with the
points and weights of an uninterrupted run of its spec (to the stack's rounding)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.support.databases import fault_backend, running_stack
from tests.support.reference import clean_run, point_faults, stored_series

FAST_RECOVERY = {"HEARTBEAT_SECONDS": "0.3", "HEARTBEAT_TIMEOUT": "2", "REAPER_SECONDS": "1", "CHECKPOINT_EVERY": "200",
                 "MAX_ATTEMPTS": "5", "SUBMIT_RATE_LIMIT": "100000/minute", "FLUSH_SECONDS": "0.2"}
SWEEP = {"name": "stack-kill", "base": {
    "model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
    "data": {"builtin": "moons", "n_samples": 64}, "optimizer": {"name": "adam", "lr": 0.02}, "batch_size": 8, "steps": 6_000,
    "record": {"every": 10}},
    "space": {"optimizer.lr": [0.005, 0.01, 0.02, 0.04]}, "seeds": 3, "max_parallel": 12}


@pytest.fixture(scope="module")
def one_worker(redis_server, tmp_path_factory):
    yield from running_stack(fault_backend(), redis_server.url, tmp_path_factory, workers=1, beat=True, env_overrides=FAST_RECOVERY)


@pytest.mark.timeout(600)
def test_a_killed_stack_resumes_each_member_from_its_own_checkpoint(one_worker):
    stack = one_worker
    with stack.client() as client:
        sweep = client.post("/api/v1/sweeps", json=SWEEP).json()
        ids = [job["id"] for job in sweep["jobs"]]
        assert len(ids) == 12

        def jobs() -> list[dict]:
            return [client.get(f"/api/v1/jobs/{job_id}").json() for job_id in ids]

        deadline = time.monotonic() + 120
        while not all(j["status"] == "running" and j["progress"]["step"] > 1_500 for j in jobs()):  # one stack, past checkpoints
            assert time.monotonic() < deadline, [j["status"] for j in jobs()]
            time.sleep(0.1)
        stack.kill_worker(stack.worker_procs[0])
        stack.start_worker()
        deadline = time.monotonic() + 300
        while client.get(f"/api/v1/sweeps/{sweep['id']}").json()["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        done = [client.get(f"/api/v1/jobs/{job_id}", params={"include": "spec"}).json() for job_id in ids]
        assert [j["status"] for j in done] == ["succeeded"] * 12
        assert all(j["attempt"] == 2 for j in done)  # every member was requeued and resumed
        for job in done:
            expected = clean_run(job["spec"])
            stored = stored_series(client, job["id"])
            assert point_faults(stored, expected["metrics"]) == (0, 0), job["id"]
            for key, points in expected["metrics"].items():
                np.testing.assert_allclose([v for _, v in stored[key]], [v for _, v in points], rtol=1e-11, atol=1e-14,
                                           err_msg=f"job {job['id']} {key}")
            model = client.get(f"/api/v1/jobs/{job['id']}/model").json()
            for got, want in zip(model["weights"], expected["model"]["weights"], strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-11)
