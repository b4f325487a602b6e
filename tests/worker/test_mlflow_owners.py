"""With AUTH=on, MLflow is behind the same owners, tested as the attack that found it open: a real
`mlflow server` under its basic-auth app, the token command and the MLflow worker's own code. An
anonymous client and another owner can neither read, write nor delete an owner's run; the owner can,
with the token that opens the REST API; two owners' experiments of one name stay apart."""

from __future__ import annotations

import httpx
import pytest
from mlflow import MlflowClient

from services.api import create_app
from services.migrate import upgrade
from services.store.db import session_factory
from services.store.models import Job
from tests.api.conftest import http
from tests.conftest import settings_for
from tests.support.services import MlflowServer
from tests.support.specs import SEED
from worker.mlflow.mirror import mirror_pass
from worker.training import train

ADMIN_PASSWORD = "admin-password-for-the-test"


@pytest.fixture(scope="module")
def guarded_mlflow():
    server = MlflowServer(admin_password=ADMIN_PASSWORD).start()
    yield server
    server.stop()


def test_mlflow_runs_belong_to_their_owner_only(tmp_path, guarded_mlflow, redis_server, monkeypatch):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    settings = settings_for(url, redis_server.url, auth="on", mlflow_tracking_uri=guarded_mlflow.url,
                            mlflow_tracking_username="admin", mlflow_tracking_password=ADMIN_PASSWORD)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")  # the MLflow worker signs in as MLflow's admin
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    cli = app.test_cli_runner()
    secret = {}
    for owner in ("alice", "bob"):
        made = cli.invoke(args=["tokens", "create", owner])
        assert made.exit_code == 0, made.output
        secret[owner] = made.output.strip().splitlines()[-1]

    runs = {}
    for owner in ("alice", "bob"):  # the same experiment name: still two experiments
        with http(app, secret[owner]) as api:
            job = api.post("/api/v1/jobs", json={**SEED, "experiment": "shared-name"}).json()
        assert train(job["id"], settings) == "succeeded"
        runs[owner] = job["id"]
    mirror_pass(settings, seconds=5)
    with session_factory(url)() as s:
        run_ids = {owner: s.get(Job, job_id).mlflow_run_id for owner, job_id in runs.items()}
    assert all(run_ids.values()), run_ids
    admin = MlflowClient(guarded_mlflow.url)
    experiments = {admin.get_run(run_ids[o]).info.experiment_id: o for o in run_ids}
    assert {admin.get_experiment(e).name for e in experiments} == {"alice/shared-name", "bob/shared-name"}

    def as_(who: str | None) -> httpx.Client:
        auth = None if who is None else (who, secret[who])
        return httpx.Client(base_url=guarded_mlflow.url, auth=auth, timeout=30)

    alice_run = run_ids["alice"]
    for who, refused in ((None, 401), ("bob", 403)):
        with as_(who) as client:
            assert client.get("/api/2.0/mlflow/runs/get", params={"run_id": alice_run}).status_code == refused
            assert client.get("/api/2.0/mlflow/artifacts/list", params={"run_id": alice_run}).status_code == refused
            assert client.post("/api/2.0/mlflow/runs/set-tag", json={"run_id": alice_run, "key": "x", "value": "y"}).status_code == refused
            assert client.post("/api/2.0/mlflow/runs/delete", json={"run_id": alice_run}).status_code == refused
    with as_("bob") as bob:
        listed = bob.post("/api/2.0/mlflow/experiments/search", json={"max_results": 100}).json().get("experiments", [])
        assert "alice/shared-name" not in {e["name"] for e in listed} and "bob/shared-name" in {e["name"] for e in listed}
    with as_("alice") as alice:
        assert alice.get("/api/2.0/mlflow/runs/get", params={"run_id": alice_run}).status_code == 200
        assert alice.post("/api/2.0/mlflow/runs/set-tag", json={"run_id": alice_run, "key": "note", "value": "mine"}).status_code == 200
    assert admin.get_run(alice_run).info.lifecycle_stage == "active"

    revoked = cli.invoke(args=["tokens", "revoke", "alice"])
    assert revoked.exit_code == 0, revoked.output
    with as_("alice") as alice:  # the revoked token no longer opens MLflow either
        assert alice.get("/api/2.0/mlflow/runs/get", params={"run_id": alice_run}).status_code == 401
