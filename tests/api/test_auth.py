"""Who may see what: bearer tokens (created with the flask CLI, stored as hashes, revocable), every
resource owned by its token's owner and invisible to others, per-owner rate limits on submissions,
and AUTH=off refused beyond loopback."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.test_jobs_lifecycle import moons
from tests.conftest import BACKENDS, _running_stack, wait_status
from tests.support.services import ROOT, Stack, free_port, port_open, wait_for

BIN = Path(sys.executable).parent
RATE = 8  # submissions per minute per owner in this stack


@pytest.fixture(scope="module", params=BACKENDS)
def auth_stack(request, redis_server, tmp_path_factory):
    yield from _running_stack(request.param, redis_server.url, tmp_path_factory,
                              env_overrides={"AUTH": "on", "SUBMIT_RATE_LIMIT": f"{RATE}/minute"})


def flask_tokens(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "flask"), "--app", "services.api", "tokens", *args], cwd=ROOT, env=stack.env,
                          capture_output=True, text=True, timeout=60)


def token(stack: Stack, name: str, owner: str | None = None) -> str:
    done = flask_tokens(stack, "create", name, *(["--owner", owner] if owner else []))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def as_(stack: Stack, secret: str | None) -> httpx.Client:
    client = stack.client()
    if secret:
        client.headers["Authorization"] = f"Bearer {secret}"
    return client


@pytest.fixture(scope="module")
def tokens(auth_stack):
    return {"alice": token(auth_stack, "alice"), "alice-laptop": token(auth_stack, "alice-laptop", owner="alice"),
            "bob": token(auth_stack, "bob")}


def test_no_or_unknown_token_is_401_but_health_and_docs_are_public(auth_stack, tokens):
    for secret in (None, "bpl_not-a-token"):
        with as_(auth_stack, secret) as client:
            response = client.get("/api/v1/jobs")
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert client.post("/api/v1/jobs", json=moons()).status_code == 401
            for public in ("/healthz", "/api/v1/openapi.json", "/docs"):
                assert client.get(public).status_code == 200, public


def test_one_owner_cannot_list_read_cancel_or_predict_with_anothers_jobs(auth_stack, tokens):
    with as_(auth_stack, tokens["alice"]) as alice, as_(auth_stack, tokens["bob"]) as bob, \
            as_(auth_stack, tokens["alice-laptop"]) as laptop:
        done = wait_status(alice, alice.post("/api/v1/jobs", json=moons()).json()["id"], {"succeeded"})
        running = alice.post("/api/v1/jobs", json=moons(epochs=2000)).json()
        for job_id in (done["id"], running["id"]):
            for path in ("", "/metrics", "/metrics/keys", "/model", "/events", "/gradients?step=0", "/trace?step=0",
                         f"/diff/{done['id']}"):
                response = bob.get(f"/api/v1/jobs/{job_id}{path}")
                assert response.status_code == 404, (path, response.text)
                assert response.json()["detail"] == f"no job {job_id}"  # the same answer as for a job that does not exist
            assert bob.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 404
            assert bob.post(f"/api/v1/jobs/{job_id}/predict", json={"X": [[0, 0]]}).status_code == 404
        assert bob.get("/api/v1/jobs").json()["jobs"] == []
        assert bob.get(f"/api/v1/jobs/{done['id']}/diff/{done['id']}").status_code == 404
        # the owner, from any of its tokens, sees and controls them
        assert {j["id"] for j in laptop.get("/api/v1/jobs").json()["jobs"]} >= {done["id"], running["id"]}
        assert laptop.post(f"/api/v1/jobs/{done['id']}/predict", json={"X": [[0, 0]]}).status_code == 200
        assert alice.post(f"/api/v1/jobs/{running['id']}/cancel").status_code == 202
        wait_status(alice, running["id"], {"cancelled"})


def test_sweeps_and_their_jobs_belong_to_the_sweeps_owner(auth_stack, tokens):
    with as_(auth_stack, tokens["alice"]) as alice, as_(auth_stack, tokens["bob"]) as bob:
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


def test_tokens_are_stored_as_hashes_and_can_be_revoked(auth_stack, tokens):
    secret = token(auth_stack, "dave")
    with as_(auth_stack, secret) as dave:
        assert dave.get("/api/v1/jobs").status_code == 200
        listed = flask_tokens(auth_stack, "list")
        assert "dave" in listed.stdout and secret not in listed.stdout
        with create_engine(auth_stack.database_url.replace("postgresql://", "postgresql+psycopg://")).connect() as conn:
            rows = conn.execute(text("SELECT name, owner, token_hash FROM api_tokens")).all()
        assert ("dave", "dave", hashlib.sha256(secret.encode()).hexdigest()) in rows
        assert all(secret not in " ".join(map(str, row)) for row in rows)
        assert flask_tokens(auth_stack, "revoke", "dave").returncode == 0
        assert dave.get("/api/v1/jobs").status_code == 401
        assert flask_tokens(auth_stack, "revoke", "dave").returncode != 0  # already revoked: said so
        assert flask_tokens(auth_stack, "create", "alice").returncode != 0  # names are unique


def test_submissions_are_rate_limited_per_owner_with_retry_after(auth_stack, tokens):
    carol, erin = token(auth_stack, "carol"), token(auth_stack, "erin")
    with as_(auth_stack, carol) as client, as_(auth_stack, erin) as other:
        answers = [client.post("/api/v1/jobs", json={"model": "not a model"}).status_code for _ in range(RATE)]
        assert answers == [422] * RATE  # counted whatever the outcome
        limited = client.post("/api/v1/jobs", json=moons())
        assert limited.status_code == 429
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        assert client.post("/api/v1/sweeps", json={}).status_code == 429  # one budget for all submissions
        assert client.get("/api/v1/jobs").status_code == 200  # reads are not limited
        assert other.post("/api/v1/jobs", json={"model": "not a model"}).status_code == 422  # another owner's budget


@pytest.mark.parametrize("auth, host, bind, starts", [
    ("off", "127.0.0.1", "0.0.0.0", False),   # gunicorn listens beyond loopback: refused by its start-up hook
    ("off", "0.0.0.0", "127.0.0.1", False),   # API_HOST says it is exposed: refused by the app factory
    ("off", "127.0.0.1", "127.0.0.1", True),  # the `make up` default
    ("on", "0.0.0.0", "0.0.0.0", True),       # compose
])
def test_auth_off_is_refused_unless_the_api_listens_on_loopback(tmp_path, auth, host, bind, starts):
    port = free_port()
    env = {**Stack(f"sqlite:///{tmp_path / 'db.sqlite'}", "redis://127.0.0.1:1/0").env, "AUTH": auth, "API_HOST": host}
    log = tmp_path / "api.log"
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-c", "python:services.api.gunicorn_conf", "--bind", f"{bind}:{port}",
                             "--workers", "1", "services.api.wsgi:app"], cwd=ROOT, env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    try:
        if starts:
            wait_for(lambda: port_open("127.0.0.1", port), 30, what="gunicorn")
            assert proc.poll() is None
        else:
            assert proc.wait(60) != 0
            assert "refusing to start: AUTH=off" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(20)


def test_python_client_with_tokens(auth_stack, tokens):
    from bplab import Client
    from bplab.errors import NotFound, Unauthorized

    with Client(auth_stack.url, token=tokens["alice"]) as alice, Client(auth_stack.url, token=tokens["bob"]) as bob, \
            Client(auth_stack.url, token="bpl_wrong") as nobody:
        job = alice.submit(moons(), idempotency_key="alice-once")
        assert alice.submit(moons(), idempotency_key="alice-once")["id"] == job["id"]
        assert bob.submit(moons(), idempotency_key="alice-once")["id"] != job["id"]  # keys are per owner
        with pytest.raises(NotFound):
            bob.get(job["id"])
        with pytest.raises(Unauthorized):
            nobody.jobs()
