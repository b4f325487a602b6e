"""With AUTH=on, MLflow is behind the same owners, tested as the attack that found it open: a real
`mlflow server` under its basic-auth app, the token command and the MLflow worker's own code. An
anonymous client and another owner can neither read, write nor delete an owner's run; the owner can,
with the token that opens the REST API; two owners' experiments of one name stay apart."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import httpx
import pytest
from mlflow import MlflowClient
from sqlalchemy import delete

from services.api import create_app
from services.migrate import upgrade
from services.mlflow.owners import MlflowOwners
from services.store import mlflow_experiments
from services.store.db import session_factory
from services.store.models import Job, MlflowExperiment
from tests.support.databases import BACKENDS, drop_database, new_database, settings_for
from tests.support.inprocess import http
from tests.support.services import MlflowServer
from tests.support.specs import SEED
from worker.mlflow.experiments import KEY_TAG, forget_experiments
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


@pytest.fixture(params=BACKENDS)
def owners(request, tmp_path, tmp_path_factory, guarded_mlflow, redis_server, monkeypatch):
    """A store (SQLite and PostgreSQL: it keeps the experiments' ids), an app with AUTH=on in front of
    the guarded MLflow, and tokens for alice and bob."""
    url = new_database(request.param, tmp_path_factory)
    upgrade(url)
    settings = settings_for(url, redis_server.url, auth="on", mlflow_tracking_uri=guarded_mlflow.url,
                            mlflow_tracking_username="admin", mlflow_tracking_password=ADMIN_PASSWORD)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    forget_experiments()
    app = create_app({"SETTINGS": settings, "TESTING": True})
    secret = {}
    for owner in ("alice", "bob"):
        made = app.test_cli_runner().invoke(args=["tokens", "create", f"{owner}-{tmp_path.name}", "--owner", owner])
        assert made.exit_code == 0, made.output
        secret[owner] = made.output.strip().splitlines()[-1]
    yield SimpleNamespace(url=url, settings=settings, app=app, secret=secret, mlflow=guarded_mlflow.url,
                          as_=lambda who: httpx.Client(base_url=guarded_mlflow.url, auth=(who, secret[who]), timeout=30))
    drop_database(url)


def _train_and_mirror(owners, who: str, **spec) -> Job:
    with http(owners.app, owners.secret[who]) as api:
        job = api.post("/api/v1/jobs", json={**SEED, **spec}).json()
    assert train(job["id"], owners.settings) == "succeeded"
    mirror_pass(owners.settings, seconds=5)
    with session_factory(owners.url)() as s:
        return s.get(Job, job["id"])


def test_no_owner_can_create_rename_or_restore_an_experiment_or_list_users(owners):
    mine = _train_and_mirror(owners, "alice", experiment=f"x-{uuid.uuid4().hex[:6]}")
    assert mine.mirror_state.value == "synced"
    with owners.as_("alice") as alice:
        for path, body in (("/api/2.0/mlflow/experiments/create", {"name": "bob/default"}),
                           ("/ajax-api/2.0/mlflow/experiments/create", {"name": "bob/default"}),
                           ("/api/2.0/mlflow/experiments/update", {"experiment_id": mine.mlflow_experiment_id, "new_name": "bob/renamed"}),
                           ("/api/2.0/mlflow/experiments/restore", {"experiment_id": mine.mlflow_experiment_id})):
            refused = alice.post(path, json=body)
            assert refused.status_code == 403 and "Backprop Lab" in refused.text, (path, refused.text)
        assert alice.get("/api/2.0/mlflow/users/list").status_code == 403
        assert alice.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": mine.mlflow_experiment_id}).status_code == 200
    admin = MlflowClient(owners.mlflow)
    assert admin.get_experiment_by_name("bob/default") is None or admin.get_experiment_by_name("bob/default").tags.get(KEY_TAG)


def test_a_squatted_name_is_reported_on_the_job_and_nothing_is_written_there(owners):
    """The attack as found: alice holds `bob/<name>` (made before the guard, or by any other way around
    it); bob's job must not write into it, and says why."""
    name = f"squat-{uuid.uuid4().hex[:6]}"
    admin = MlflowClient(owners.mlflow)
    squatted = admin.create_experiment(f"bob/{name}")
    with MlflowOwners(owners.settings) as mlflow_owners:
        mlflow_owners.grant("alice", squatted)
    job = _train_and_mirror(owners, "bob", experiment=name)
    assert job.mirror_state.value == "failed" and "taken by an experiment this service did not create" in job.mirror_error
    assert job.mlflow_run_id is None and admin.search_runs([squatted]) == []
    with owners.as_("bob") as bob:  # bob was granted nothing on the squatter's experiment
        assert bob.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": squatted}).status_code == 403
    with http(owners.app, owners.secret["bob"]) as api:
        assert "taken" in api.get(f"/api/v1/jobs/{job.id}").json()["mlflow"]["error"]


def test_an_experiment_made_before_a_crash_or_by_an_older_version_is_kept_only_if_it_is_ours(owners):
    admin = MlflowClient(owners.mlflow)
    # a pass that created the experiment with its reserved key, then died before recording the id
    crashed = f"crash-{uuid.uuid4().hex[:6]}"
    with session_factory(owners.url).begin() as s:
        key = mlflow_experiments.reserve(s, owners.mlflow, "bob", crashed).key
    made = admin.create_experiment(f"bob/{crashed}", tags={KEY_TAG: key})
    assert _train_and_mirror(owners, "bob", experiment=crashed).mlflow_experiment_id == made

    # an older version's experiment (its jobs point at it): kept while only its owner holds it ...
    legacy = f"legacy-{uuid.uuid4().hex[:6]}"
    old = _train_and_mirror(owners, "bob", experiment=legacy)
    with session_factory(owners.url).begin() as s:
        s.execute(delete(MlflowExperiment).where(MlflowExperiment.experiment == legacy))  # as before the upgrade
    forget_experiments()
    assert _train_and_mirror(owners, "bob", experiment=legacy).mlflow_experiment_id == old.mlflow_experiment_id
    # ... and refused once someone else holds a permission on it
    shared = f"shared-{uuid.uuid4().hex[:6]}"
    old = _train_and_mirror(owners, "bob", experiment=shared)
    with MlflowOwners(owners.settings) as mlflow_owners:
        mlflow_owners.grant("alice", old.mlflow_experiment_id)
    with session_factory(owners.url).begin() as s:
        s.execute(delete(MlflowExperiment).where(MlflowExperiment.experiment == shared))
    forget_experiments()
    refused = _train_and_mirror(owners, "bob", experiment=shared)
    assert refused.mirror_state.value == "failed" and "shared with alice" in refused.mirror_error


def test_mlflow_answers_pages_of_its_own_origin_only(owners):
    """A page on another loopback port, with the owner's cached basic auth, can neither read nor write."""
    port = owners.mlflow.rsplit(":", 1)[1]
    mine = _train_and_mirror(owners, "alice", experiment=f"cors-{uuid.uuid4().hex[:6]}")
    with owners.as_("alice") as alice:
        for origin, allowed in ((f"http://127.0.0.1:{port}", True), (f"http://localhost:{port}", True),
                                ("http://127.0.0.1:38555", False), ("http://localhost:9", False), ("https://example.com", False)):
            read = alice.get("/api/2.0/mlflow/runs/get", params={"run_id": mine.mlflow_run_id}, headers={"Origin": origin})
            tagged = alice.post("/api/2.0/mlflow/runs/set-tag", json={"run_id": mine.mlflow_run_id, "key": "from", "value": origin},
                                headers={"Origin": origin})
            assert (read.status_code == 200) == allowed and (tagged.status_code == 200) == allowed, (origin, read.text, tagged.text)
            assert allowed or "run" not in read.json()
        assert alice.get("/api/2.0/mlflow/runs/get", params={"run_id": mine.mlflow_run_id}).status_code == 200  # no Origin: not a page
        rebound = alice.get("/api/2.0/mlflow/runs/get", params={"run_id": mine.mlflow_run_id}, headers={"Host": "attacker.example"})
        assert rebound.status_code >= 400  # DNS rebinding: only the names it is reached by
    tags = MlflowClient(owners.mlflow).get_run(mine.mlflow_run_id).data.tags
    assert tags.get("from", "").endswith(port)


def test_registered_models_belong_to_their_owner(owners):
    """`POST /jobs/{id}/register` makes `<name>@<owner>` in MLflow's registry from the job's run; another
    owner can neither read it, register into it, nor squat an owner's names, in the REST API or MLflow's."""
    x = uuid.uuid4().hex[:6]  # one MLflow server for both databases: names of their own
    with http(owners.app, owners.secret["alice"]) as api:
        job = api.post("/api/v1/jobs", json={**SEED, "experiment": f"registry-{x}"}).json()
        assert train(job["id"], owners.settings) == "succeeded"
        early = api.post(f"/api/v1/jobs/{job['id']}/register", json={"name": f"best-{x}"})  # the MLflow worker has not run yet
        assert early.status_code == 409 and early.json()["type"].endswith("#model-not-mirrored") and int(early.headers["Retry-After"]) >= 1
        mirror_pass(owners.settings, seconds=5)
        made = api.post(f"/api/v1/jobs/{job['id']}/register", json={"name": f"best-{x}"})
        assert made.status_code == 201, made.text
        assert made.json()["name"] == f"best-{x}@alice" and made.json()["version"] == "1"
        assert f"#/models/best-{x}%40alice/versions/1" in made.json()["url"]
        assert [(v["name"], v["version"]) for v in api.get(f"/api/v1/jobs/{job['id']}").json()["registered"]] == [(f"best-{x}@alice", "1")]
        assert api.post(f"/api/v1/jobs/{job['id']}/register", json={"name": f"best-{x}"}).json()["version"] == "2"
        assert api.post(f"/api/v1/jobs/{job['id']}/register", json={"name": "bad/name"}).status_code == 422
    with http(owners.app, owners.secret["bob"]) as api:
        assert api.post(f"/api/v1/jobs/{job['id']}/register", json={"name": f"best-{x}"}).status_code == 404  # not bob's job
    bobs = _train_and_mirror(owners, "bob", experiment=f"registry-{x}")
    admin = MlflowClient(owners.mlflow)
    admin.create_registered_model(f"taken-{x}@bob")  # made outside the service: not bob's to register into
    with http(owners.app, owners.secret["bob"]) as api:
        taken = api.post(f"/api/v1/jobs/{bobs.id}/register", json={"name": f"taken-{x}"})
        assert taken.status_code == 409 and taken.json()["type"].endswith("#name-taken")

    with owners.as_("bob") as bob:
        assert bob.get("/api/2.0/mlflow/registered-models/get", params={"name": f"best-{x}@alice"}).status_code == 403
        into = bob.post("/api/2.0/mlflow/model-versions/create", json={
            "name": f"best-{x}@alice", "source": f"models:/{bobs.mlflow_model_id}", "run_id": bobs.mlflow_run_id})
        assert into.status_code == 403
        listed = bob.get("/api/2.0/mlflow/registered-models/search").json().get("registered_models", [])
        assert f"best-{x}@alice" not in {m["name"] for m in listed}
        for path, body in (("/api/2.0/mlflow/registered-models/create", {"name": f"squat-{x}@alice"}),
                           ("/ajax-api/2.0/mlflow/registered-models/create", {"name": "unprefixed"}),
                           ("/api/2.0/mlflow/registered-models/create", {"name": "x@bob@alice"})):
            assert bob.post(path, json=body).status_code == 403, path
        # the UI's Register model, in bob's own names: allowed, and his run's model goes in
        assert bob.post("/ajax-api/2.0/mlflow/registered-models/create", json={"name": f"mine-{x}@bob"}).status_code == 200
        assert bob.post("/api/2.0/mlflow/registered-models/rename", json={"name": f"mine-{x}@bob", "new_name": f"mine-{x}@alice"}).status_code == 403
        version = bob.post("/ajax-api/2.0/mlflow/model-versions/create", json={
            "name": f"mine-{x}@bob", "source": f"models:/{bobs.mlflow_model_id}", "run_id": bobs.mlflow_run_id, "model_id": bobs.mlflow_model_id})
        assert version.status_code == 200, version.text
    with owners.as_("alice") as alice:
        assert alice.get("/api/2.0/mlflow/registered-models/get", params={"name": f"best-{x}@alice"}).status_code == 200
        assert alice.get("/api/2.0/mlflow/registered-models/get", params={"name": f"mine-{x}@bob"}).status_code == 403
