"""PostgreSQL stopped and started again while jobs train: the API answers 503 problem+json (never
500) while it is down, and the API and the workers carry on afterwards without anyone stepping in;
the jobs finish with every point once, equal to an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.databases import fault_backend, running_stack
from tests.support.reference import clean_run, stored_series
from tests.support.services import port_open, wait_for

DOWN_SECONDS = 5.0


def _cluster() -> list[str] | None:
    """`pg_ctlcluster ... VERSION main` when this machine's PostgreSQL can be stopped and started by us."""
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    if not versions or not shutil.which("pg_ctlcluster") or os.geteuid() != 0:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


@pytest.fixture(scope="module")
def pg_stack(redis_server, tmp_path_factory):
    if fault_backend() != "postgresql":
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    if _cluster() is None:
        reason = "cannot stop and start this machine's PostgreSQL (needs root and pg_ctlcluster)"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " and REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    yield from running_stack("postgresql", redis_server.url, tmp_path_factory, beat=True,
                              env_overrides={"REAPER_SECONDS": "1", "HEARTBEAT_TIMEOUT": "30", "DB_RETRY_SECONDS": "60"})


def spec_for(seed: int) -> dict:
    return {"model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "moons", "n_samples": 64}, "optimizer": {"name": "adam", "lr": 0.02}, "batch_size": 8,
            "steps": 20000, "seed": seed}


@pytest.mark.timeout(300)
def test_postgres_restart_during_training(pg_stack):
    cluster = _cluster()
    with pg_stack.client() as client:
        jobs = [client.post("/api/v1/jobs", json=spec_for(seed)).json()["id"] for seed in (1, 2)]
        wait_for(lambda: client.get(f"/api/v1/jobs/{jobs[0]}").json()["progress"]["step"] > 1000, 60, what="training under way")
        subprocess.run([*cluster, "stop", "-m", "fast"], check=True, timeout=60, capture_output=True)
        answers: list[tuple[int, str]] = []
        try:
            wait_for(lambda: not port_open("127.0.0.1", 5432), 20, what="PostgreSQL to stop")
            until = time.monotonic() + DOWN_SECONDS
            while time.monotonic() < until:
                for method, path, body in (("GET", f"/api/v1/jobs/{jobs[0]}", None), ("GET", "/api/v1/jobs", None),
                                           ("POST", "/api/v1/jobs", spec_for(3)), ("GET", "/healthz", None)):
                    response = client.request(method, path, json=body)
                    answers.append((response.status_code, response.headers.get("content-type", "")))
                time.sleep(0.2)
        finally:
            subprocess.run([*cluster, "start"], check=True, timeout=60, capture_output=True)
        wait_for(lambda: port_open("127.0.0.1", 5432), 30, what="PostgreSQL to start")
        assert answers and all(code == 503 and ctype.startswith("application/problem+json") for code, ctype in answers), answers
        assert client.get("/healthz").status_code == 200  # the API is back by itself
        worker_log = (pg_stack.logdir / "worker0.log").read_text()
        assert "database unavailable" in worker_log and "retrying" in worker_log  # training did meet the outage

        for job_id in jobs:
            deadline = time.monotonic() + 120
            while (job := client.get(f"/api/v1/jobs/{job_id}", params={"include": "spec"}).json())["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, pg_stack.logs()[-4000:]
                time.sleep(0.3)
            assert job["status"] == "succeeded", (job, pg_stack.logs()[-4000:])
            assert job["attempt"] == 1  # the worker rode out the outage; nothing had to be requeued
            expected = clean_run(job["spec"])
            assert stored_series(client, job_id) == expected["metrics"]
            assert client.get(f"/api/v1/jobs/{job_id}/model").json()["weights"] == expected["model"]["weights"]
        print(f"postgresql restart: down {DOWN_SECONDS:g}s, {len(answers)} requests answered 503, "
              f"{len(jobs)} training jobs succeeded on attempt 1 with every point once")

        after = client.post("/api/v1/jobs", json={**spec_for(4), "steps": 200}).json()
        deadline = time.monotonic() + 60
        while client.get(f"/api/v1/jobs/{after['id']}").json()["status"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.2)
