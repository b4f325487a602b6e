"""Training workers whose clocks are two minutes off (libfaketime: one 120 s slow, one 120 s fast) with the
reaper on the right time: leases, heartbeats and the reaper's cut-offs are the database's clock
(services.store.columns.db_now), so no live job is reaped while it trains on the slow host, and a job
whose fast host is lost is reclaimed within the heartbeat timeout plus a reaper period; every job ends
bit for bit its clean run. On SQLite (one host's file) the host's clock is the database's, so the
scenario is run against PostgreSQL wherever it exists (always in CI)."""

from __future__ import annotations

import time

import pytest

from tests.support.databases import fault_backend, running_stack
from tests.support.reference import clean_run, stored_series
from tests.support.services import LIBFAKETIME, wait_for

SKEW = 120
FAST_RECOVERY = {"HEARTBEAT_SECONDS": "0.3", "HEARTBEAT_TIMEOUT": "2", "REAPER_SECONDS": "1", "CHECKPOINT_EVERY": "500",
                 "MAX_ATTEMPTS": "5", "FLUSH_SECONDS": "0.2"}
pytestmark = [pytest.mark.skipif(not LIBFAKETIME.exists(), reason="libfaketime is not installed (apt-get install libfaketime; "
                                                                   ".ci/run installs it)"),
              pytest.mark.skipif(fault_backend() != "postgresql", reason="SQLite is one host's file: its clock is the host's, "
                                 "so hosts with clocks apart cannot share it")]


def _spec(seed: int, steps: int) -> dict:
    """A job of a few seconds here: long enough for the reaper to look at it many times."""
    return {"model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "moons", "n_samples": 64}, "optimizer": {"name": "adam", "lr": 0.02}, "batch_size": 8,
            "steps": steps, "seed": seed, "record": {"every": 50}}


@pytest.fixture(scope="module")
def skewed_stack(redis_server, tmp_path_factory):
    yield from running_stack(fault_backend(), redis_server.url, tmp_path_factory, workers=0, beat=True, env_overrides=FAST_RECOVERY)


def _job(client, job_id: int) -> dict:
    return client.get(f"/api/v1/jobs/{job_id}", params={"include": "spec"}).json()


def _ready(stack, proc) -> None:
    log = stack.logdir / f"worker{stack.worker_procs.index(proc)}.log"
    wait_for(lambda: "ready." in log.read_text(), 60, interval=0.2, what="a worker")


@pytest.mark.timeout(400)
def test_a_slow_hosts_jobs_live_and_a_lost_fast_hosts_are_reclaimed_on_the_databases_clock(skewed_stack):
    stack = skewed_stack
    slow = stack.start_worker(clock_offset=-SKEW)
    _ready(stack, slow)
    with stack.client() as client:
        # The slow host trains for several heartbeat timeouts: by its own clock each beat is two minutes old.
        lived = client.post("/api/v1/jobs", json=_spec(1, 100_000)).json()["id"]
        wait_for(lambda: _job(client, lived)["status"] in ("succeeded", "failed"), 180, interval=0.5, what="the slow host's job")
        done = _job(client, lived)
        assert done["status"] == "succeeded" and done["attempt"] == 1, (done, stack.logs()[-3000:])  # never reaped while alive
        stack.kill_worker(slow)

        fast = stack.start_worker(clock_offset=SKEW)
        _ready(stack, fast)
        lost = client.post("/api/v1/jobs", json=_spec(2, 100_000)).json()["id"]
        wait_for(lambda: _job(client, lost)["progress"]["step"] > 2000, 120, interval=0.1, what="the fast host's job under way")
        stack.kill_worker(fast)  # the host is lost: by its own clock its last beat is two minutes in the future
        killed_at = time.monotonic()
        wait_for(lambda: _job(client, lost)["status"] == "queued", 60, interval=0.05, what="the lost host's job requeued")
        reclaimed = time.monotonic() - killed_at
        bound = float(FAST_RECOVERY["HEARTBEAT_TIMEOUT"]) + float(FAST_RECOVERY["REAPER_SECONDS"]) + 1.0  # + a reaper pass's commit
        assert reclaimed <= bound, f"reclaimed {reclaimed:.1f} s after the loss (bound {bound} s)"
        stack.start_worker()  # another host trains it on from its checkpoint
        wait_for(lambda: _job(client, lost)["status"] in ("succeeded", "failed"), 180, interval=0.5, what="the reclaimed job")
        for job_id in (lived, lost):
            job = _job(client, job_id)
            expected = clean_run(job["spec"])
            model = client.get(f"/api/v1/jobs/{job_id}/model").json()
            assert job["status"] == "succeeded"
            assert stored_series(client, job_id) == expected["metrics"] and model["weights"] == expected["model"]["weights"]
    print(f"{stack.backend}: slow host's job attempts={done['attempt']}; the fast host's lost job reclaimed in {reclaimed:.1f} s "
          f"(bound {bound:.0f} s)")
