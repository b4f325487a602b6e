"""Who may see what: bearer tokens (created with the `flask tokens` CLI, stored as hashes, revocable),
every resource owned by its token's owner and invisible to others, and per-owner rate limits on
submissions. The app in-process, on both databases."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from services.store import jobs
from services.store.db import session_factory
from services.store.models import ApiToken
from tests.support.databases import BACKENDS, drop_database
from tests.support.inprocess import http, make_app, token
from tests.support.specs import moons

RATE = 8  # submissions per minute per owner in this app


@pytest.fixture(scope="module", params=BACKENDS)
def auth_app(request, redis_server, tmp_path_factory):
    flask_app, url = make_app(request.param, redis_server.url, tmp_path_factory, auth="on", submit_rate_limit=f"{RATE}/minute")
    yield flask_app
    drop_database(url)



@pytest.fixture(scope="module")
def tokens(auth_app):
    return {"alice": token(auth_app, "alice"), "alice-laptop": token(auth_app, "alice-laptop", owner="alice"),
            "bob": token(auth_app, "bob")}


def test_no_or_unknown_token_is_401_but_health_and_docs_are_public(auth_app, tokens):
    for secret in (None, "bpl_not-a-token"):
        with http(auth_app, secret) as client:
            response = client.get("/api/v1/jobs")
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert client.post("/api/v1/jobs", json=moons()).status_code == 401
            for public in ("/healthz", "/readyz", "/api/v1/openapi.json", "/docs", "/docs/problems"):
                assert client.get(public).status_code == 200, public
            assert client.get("/readyz").json()["outbox"] is None  # nothing about the owners' work


def test_one_owner_cannot_list_read_cancel_or_predict_with_anothers_jobs(auth_app, tokens):
    from worker.training import train

    settings = auth_app.config["SETTINGS"]
    with http(auth_app, tokens["alice"]) as alice, http(auth_app, tokens["bob"]) as bob, http(auth_app, tokens["alice-laptop"]) as laptop:
        done = alice.post("/api/v1/jobs", json=moons()).json()
        assert train(done["id"], settings) == "succeeded"
        running = alice.post("/api/v1/jobs", json=moons(epochs=2000)).json()
        with session_factory(settings.database_url).begin() as session:
            assert jobs.claim(session, running["id"])  # a worker has it
        for job_id in (done["id"], running["id"]):
            for path in ("", "/metrics", "/metrics/keys", "/model", "/events", "/gradients?step=0", "/trace?step=0",
                         f"/diff/{done['id']}"):
                response = bob.get(f"/api/v1/jobs/{job_id}{path}")
                assert response.status_code == 404, (path, response.text)
                assert response.json()["detail"] == f"no job {job_id}"  # the same answer as for a job that does not exist
            assert bob.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 404
            assert bob.post(f"/api/v1/jobs/{job_id}/predict", json={"X": [[0, 0]]}).status_code == 404
            assert bob.patch(f"/api/v1/jobs/{job_id}", json={"name": "mine"}).status_code == 404
            assert bob.post(f"/api/v1/jobs/{job_id}/clone", json={}).status_code == 404
            assert bob.delete(f"/api/v1/jobs/{job_id}").status_code == 404
        experiment = alice.get(f"/api/v1/jobs/{done['id']}").json()["experiment"]
        assert bob.post(f"/api/v1/experiments/{experiment}/archive").status_code == 404
        assert experiment not in [e["name"] for e in bob.get("/api/v1/experiments").json()["experiments"]]
        assert alice.get(f"/api/v1/jobs/{done['id']}").json()["archived"] is False
        assert bob.get("/api/v1/jobs").json()["jobs"] == []
        assert bob.get(f"/api/v1/jobs/{done['id']}/diff/{done['id']}").status_code == 404
        # the owner, from any of its tokens, sees and controls them
        assert {j["id"] for j in laptop.get("/api/v1/jobs").json()["jobs"]} >= {done["id"], running["id"]}
        assert laptop.post(f"/api/v1/jobs/{done['id']}/predict", json={"X": [[0, 0]]}).status_code == 200
        cancelled = alice.post(f"/api/v1/jobs/{running['id']}/cancel")
        assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True


def test_sweeps_and_their_jobs_belong_to_the_sweeps_owner(auth_app, tokens):
    with http(auth_app, tokens["alice"]) as alice, http(auth_app, tokens["bob"]) as bob:
        sweep = alice.post("/api/v1/sweeps", json={"base": moons(epochs=1), "space": {"optimizer.lr": [0.01, 0.02]}}).json()
        assert bob.get(f"/api/v1/sweeps/{sweep['id']}").status_code == 404
        assert bob.post(f"/api/v1/sweeps/{sweep['id']}/cancel").status_code == 404
        assert bob.get(f"/api/v1/sweeps/{sweep['id']}/importance").status_code == 404
        assert bob.get("/api/v1/sweeps").json()["sweeps"] == []
        assert bob.get("/api/v1/jobs", params={"sweep_id": sweep["id"]}).json()["jobs"] == []
        theirs = alice.get("/api/v1/jobs", params={"sweep_id": sweep["id"]}).json()["jobs"]
        assert len(theirs) == 2
        for job in theirs:
            assert bob.get(f"/api/v1/jobs/{job['id']}").status_code == 404


def test_tokens_are_stored_as_hashes_and_can_be_revoked(auth_app, tokens):
    runner = auth_app.test_cli_runner()
    secret = token(auth_app, "dave")
    with http(auth_app, secret) as dave:
        assert dave.get("/api/v1/jobs").status_code == 200
        listed = runner.invoke(args=["tokens", "list"])
        assert "dave" in listed.output and secret not in listed.output
        with session_factory(auth_app.config["SETTINGS"].database_url)() as session:
            rows = session.execute(select(ApiToken.name, ApiToken.owner, ApiToken.token_hash)).all()
        assert ("dave", "dave", hashlib.sha256(secret.encode()).hexdigest()) in rows
        assert all(secret not in " ".join(map(str, row)) for row in rows)
        assert runner.invoke(args=["tokens", "revoke", "dave"]).exit_code == 0
        assert dave.get("/api/v1/jobs").status_code == 401
        assert runner.invoke(args=["tokens", "revoke", "dave"]).exit_code != 0  # already revoked: said so
        again = runner.invoke(args=["tokens", "create", "alice"])
        assert again.exit_code != 0 and "exists" in again.output  # names are unique


def test_submissions_are_rate_limited_per_owner_with_retry_after(auth_app, tokens):
    carol, erin = token(auth_app, "carol"), token(auth_app, "erin")
    with http(auth_app, carol) as client, http(auth_app, erin) as other:
        answers = [client.post("/api/v1/jobs", json={"model": "not a model"}).status_code for _ in range(RATE)]
        assert answers == [422] * RATE  # counted whatever the outcome
        limited = client.post("/api/v1/jobs", json=moons())
        assert limited.status_code == 429
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        assert client.post("/api/v1/sweeps", json={}).status_code == 429  # one budget for all submissions
        assert client.get("/api/v1/jobs").status_code == 200  # reads are not limited
        assert other.post("/api/v1/jobs", json={"model": "not a model"}).status_code == 422  # another owner's budget


def test_python_client_with_tokens(auth_app, tokens):
    import httpx

    from bplab import Client, NotFound, Unauthorized

    def client(secret: str) -> Client:
        return Client("http://127.0.0.1", token=secret, transport=httpx.WSGITransport(app=auth_app))

    with client(tokens["alice"]) as alice, client(tokens["bob"]) as bob, client("bpl_wrong") as nobody:
        job = alice.submit(moons(), idempotency_key="alice-once")
        assert alice.submit(moons(), idempotency_key="alice-once")["id"] == job["id"]
        assert bob.submit(moons(), idempotency_key="alice-once")["id"] != job["id"]  # keys are per owner
        with pytest.raises(NotFound):
            bob.get(job["id"])
        with pytest.raises(Unauthorized):
            nobody.jobs()


def test_datasets_belong_to_their_owner(auth_app, tokens):
    content = b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n"
    with http(auth_app, tokens["alice"]) as alice, http(auth_app, tokens["bob"]) as bob:
        mine = alice.post("/api/v1/datasets", files={"file": ("d.csv", content)}).json()
        assert bob.get(f"/api/v1/datasets/{mine['id']}").status_code == 404
        assert bob.get(f"/api/v1/datasets/{mine['id']}/jobs").status_code == 404
        assert bob.delete(f"/api/v1/datasets/{mine['id']}").status_code == 404
        spec = {"model": {"layers": [{"units": 1, "activation": "sigmoid"}]}, "loss": "bce", "data": {"dataset": mine["id"], "target": "label"}}
        refused = bob.post("/api/v1/jobs", json=spec)
        assert refused.status_code == 422 and refused.json()["field"] == "data.dataset"
        theirs = bob.post("/api/v1/datasets", files={"file": ("d.csv", content)})
        assert theirs.status_code == 201 and theirs.json()["id"] != mine["id"]  # the same table: bob's own dataset
        assert mine["id"] not in [d["id"] for d in bob.get("/api/v1/datasets").json()["datasets"]]
        assert alice.post("/api/v1/jobs", json=spec).status_code == 202
        with http(auth_app, tokens["alice-laptop"]) as laptop:  # another token of alice's: her datasets
            assert laptop.get(f"/api/v1/datasets/{mine['id']}").status_code == 200
