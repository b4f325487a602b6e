"""`make up`'s process layout (services/up.py under supervisord): a training worker SIGKILLed while it
trains leaves the API answering, is started again, and the job it held finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.services import ROOT, free_port, wait_for
from tests.support.specs import moons
from tests.support.waiting import wait_mirror, wait_status

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def make_up(tmp_path_factory):
    var = tmp_path_factory.mktemp("up")
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_UI_URL")}
    env.update(VAR_DIR=str(var), API_PORT=str(api_port), MLFLOW_PORT=str(free_port()), EMBEDDED_REDIS_PORT=str(free_port()),
               HEARTBEAT_SECONDS="0.5", HEARTBEAT_TIMEOUT="4", REAPER_SECONDS="1", CHECKPOINT_EVERY="2000", PYTHONPATH=str(ROOT))
    log = open(var / "up.log", "w")  # noqa: SIM115 - the process writes to it until the fixture ends
    proc = subprocess.Popen([sys.executable, "-m", "services.up"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{api_port}"
    try:
        wait_for(lambda: _answers(url), 120, interval=0.5, what="make up's API")
        yield url, var, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def supervised_pid(var: Path, program: str) -> int:
    done = subprocess.run([str(BIN / "supervisorctl"), "-c", str(var / "supervisord.conf"), "pid", program],
                          capture_output=True, text=True, timeout=30)
    return int(done.stdout.strip() or 0)


@pytest.mark.timeout(300)
def test_a_killed_training_worker_is_restarted_and_its_job_finishes(make_up):
    url, var, _ = make_up
    with httpx.Client(base_url=url, timeout=30) as client:
        job = client.post("/api/v1/jobs", json=moons(epochs=500, batch_size=1, record={"every": 10})).json()  # 40,000 steps
        wait_for(lambda: client.get(f"/api/v1/jobs/{job['id']}").json()["progress"]["step"] > 0, 60, what="training under way")
        victim = supervised_pid(var, "worker")
        os.kill(victim, signal.SIGKILL)
        assert client.get("/healthz").status_code == 200  # the API stays up
        other = client.post("/api/v1/jobs", json=moons())
        assert other.status_code == 202
        wait_for(lambda: supervised_pid(var, "worker") not in (0, victim), 60, what="the worker to be started again")
        done = wait_status(client, job["id"], {"succeeded", "failed"}, timeout=180)
        assert done["status"] == "succeeded", done
        steps = client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss"}).json()["loss"]["steps"]
        assert steps == list(range(0, 40_000, 10)) + [39_999]  # every recorded step once
        assert wait_status(client, other.json()["id"], {"succeeded"})["status"] == "succeeded"
        assert wait_mirror(client, job["id"], timeout=120)["mlflow"]["state"] == "synced"  # the MLflow worker ran too
