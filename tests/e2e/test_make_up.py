"""`make up`'s process layout (services/up/ under supervisord): a training worker SIGKILLed while it
trains leaves the API answering, is started again, and the job it held finishes; nothing outlives
make up killed hard; with AUTH=on, a token made in another shell opens its MLflow."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx
import psutil
import pytest

from tests.support.services import BIN, ROOT, MakeUp, port_open, wait_for
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
        job = client.post("/api/v1/jobs", json=moons(epochs=200, batch_size=1, record={"every": 10})).json()  # 16,000 steps
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
        assert steps == list(range(0, 16_000, 10)) + [15_999]  # every recorded step once
        assert wait_status(client, other.json()["id"], {"succeeded"})["status"] == "succeeded"
        assert wait_mirror(client, job["id"], timeout=120)["mlflow"]["state"] == "synced"  # the MLflow worker ran too


@pytest.mark.timeout(500)
def test_auth_on_make_up_tokens_made_beside_it_open_its_mlflow_and_nothing_outlives_it(tmp_path_factory):
    """docs/operating.md: `AUTH=on make up`, then in another shell (none of make up's variables, not
    even AUTH) `flask --app services.api tokens create dora`: dora signs in to MLflow with it; with
    that MLflow server down the command says so and stores nothing. Then make up's process group is
    SIGKILLed (as a closed terminal or `kill -9 -PGID` does): every program and their children end
    and their ports are free; the terminal showed the banner and each program's start, the programs'
    own output is in VAR_DIR/logs."""
    var = tmp_path_factory.mktemp("up-auth")
    up = MakeUp(var, AUTH="on").start()
    try:
        made_up = ("AUTH", "DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                   "MLFLOW_UI_URL", "PUBLIC_URL", "BPLAB_QUEUE", "API_PORT", "MLFLOW_PORT", "EMBEDDED_REDIS_PORT")
        shell = {k: v for k, v in os.environ.items() if k not in made_up} | {"VAR_DIR": str(var)}  # where `make up` keeps its files

        def flask(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(BIN / "flask"), "--app", "services.api", "tokens", *args], cwd=ROOT, env=shell,
                                  capture_output=True, text=True, timeout=120)

        created = flask("create", "dora")
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip()
        with httpx.Client(base_url=up.mlflow_url, timeout=30) as mlflow:
            assert mlflow.post("/api/2.0/mlflow/experiments/search", json={"max_results": 1}, auth=("dora", secret)).status_code == 200
            assert mlflow.post("/api/2.0/mlflow/experiments/search", json={"max_results": 1}, auth=("dora", "wrong")).status_code == 401
        with httpx.Client(base_url=up.url, timeout=30, headers={"Authorization": f"Bearer {secret}"}) as api:
            job = api.post("/api/v1/jobs", json=moons(epochs=2000, batch_size=1, record={"every": 100})).json()
            wait_for(lambda: api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "running", 60, what="training under way")

        everything = psutil.Process(up.process.pid).children(recursive=True)
        assert len(everything) >= 12, everything  # supervisord, six programs with their wrappers, Celery's pools, MLflow's uvicorn
        up.supervisorctl("stop", "mlflow")
        refused = flask("create", "erin")
        assert refused.returncode != 0 and "MLflow" in refused.stderr and "nothing was changed" in refused.stderr, refused.stderr
        assert "erin" not in flask("list").stdout

        ports = [up.api_port, up.mlflow_port, int(up.env["EMBEDDED_REDIS_PORT"])]
        os.killpg(up.process.pid, signal.SIGKILL)
        up.process.wait(10)

        def gone() -> bool:
            return not [p for p in everything if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

        wait_for(gone, 60, interval=0.5, what="make up's programs to end")
        assert not any(port_open("127.0.0.1", port) for port in ports)
        terminal = (var / "up.log").read_text()
        assert "Backprop Lab is starting" in terminal and "spawned: 'api'" in terminal and str(var / "logs") in terminal
        assert '"POST /api/v1/jobs' not in terminal and "celery@" not in terminal  # the programs' own lines are in their logs
        assert '"POST /api/v1/jobs HTTP/1.1" 202' in (var / "logs" / "api.log").read_text()
        assert "ready." in (var / "logs" / "worker.log").read_text()
    finally:
        up.stop()
