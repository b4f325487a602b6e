"""`make up`'s process layout (services/up.py under supervisord): a training worker SIGKILLed while it
trains leaves the API answering, is started again, and the job it held finishes."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from tests.support.services import MakeUp, wait_for
from tests.support.specs import moons
from tests.support.waiting import wait_mirror, wait_status


@pytest.fixture(scope="module")
def make_up(tmp_path_factory):
    stack = MakeUp(tmp_path_factory.mktemp("up"), HEARTBEAT_SECONDS="0.5", HEARTBEAT_TIMEOUT="4", REAPER_SECONDS="1",
                   CHECKPOINT_EVERY="2000").start()
    yield stack
    stack.stop()


@pytest.mark.timeout(300)
def test_a_killed_training_worker_is_restarted_and_its_job_finishes(make_up):
    with httpx.Client(base_url=make_up.url, timeout=30) as client:
        job = client.post("/api/v1/jobs", json=moons(epochs=500, batch_size=1, record={"every": 10})).json()  # 40,000 steps
        wait_for(lambda: client.get(f"/api/v1/jobs/{job['id']}").json()["progress"]["step"] > 0, 60, what="training under way")
        victim = make_up.pid("worker")
        os.kill(victim, signal.SIGKILL)
        assert client.get("/healthz").status_code == 200  # the API stays up
        other = client.post("/api/v1/jobs", json=moons())
        assert other.status_code == 202
        wait_for(lambda: make_up.pid("worker") not in (0, victim), 60, what="the worker to be started again")
        done = wait_status(client, job["id"], {"succeeded", "failed"}, timeout=180)
        assert done["status"] == "succeeded", done
        steps = client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss"}).json()["loss"]["steps"]
        assert steps == list(range(0, 40_000, 10)) + [39_999]  # every recorded step once
        assert wait_status(client, other.json()["id"], {"succeeded"})["status"] == "succeeded"
        assert wait_mirror(client, job["id"], timeout=120)["mlflow"]["state"] == "synced"  # the MLflow worker ran too
