"""Fixtures shared by the service tests: real Redis, SQLite and PostgreSQL, live API + workers."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.support.services import MlflowServer, Redis, Stack, create_postgres_database, drop_postgres_database, postgres_available

BACKENDS = ["sqlite", "postgresql"]


def pytest_report_header(config):
    return [f"REQUIRE_POSTGRES={os.environ.get('REQUIRE_POSTGRES', '0')} (1: a missing PostgreSQL fails instead of skipping)"]


@pytest.fixture(scope="session")
def redis_server():
    server = Redis()
    yield server
    server.stop()


def _database(backend: str, tmp_path_factory) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'bplab.db'}"
    if not postgres_available():
        reason = "PostgreSQL is not reachable on 127.0.0.1:5432"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} and REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    return create_postgres_database()


@pytest.fixture
def database_url(request, tmp_path_factory):
    """A fresh empty database of the parametrized backend."""
    url = _database(request.param, tmp_path_factory)
    yield url
    if url.startswith("postgresql"):
        drop_postgres_database(url)


def _running_stack(backend: str, redis_url: str, tmp_path_factory, **kwargs):
    """A started Stack on a fresh database of `backend`; stopped and dropped afterwards."""
    url = _database(backend, tmp_path_factory)
    stack = Stack(url, redis_url, **kwargs)
    stack.backend = backend
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        if url.startswith("postgresql"):
            drop_postgres_database(url)


def fault_backend() -> str:
    """The store the fault tests run on: PostgreSQL (as in production, and always in CI), or SQLite
    where this machine has no PostgreSQL (said in the test's id)."""
    return "postgresql" if postgres_available() or os.environ.get("REQUIRE_POSTGRES") == "1" else "sqlite"


@pytest.fixture(scope="session", params=BACKENDS)
def stack(request, redis_server, tmp_path_factory):
    """API + one worker on SQLite and on PostgreSQL (session-wide: starting processes is slow)."""
    yield from _running_stack(request.param, redis_server.url, tmp_path_factory, env_overrides={
        "MAX_PARAMS": "200000", "MAX_STEPS": "2000000", "MAX_SAMPLES": "20000", "MAX_REQUEST_BYTES": "2000000"})


@pytest.fixture
def api(stack):
    with stack.client() as client:
        yield client


def wait_status(client: httpx.Client, job_id: int, statuses: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")


# -- MLflow ---------------------------------------------------------------------------------------

MAX_POINTS = 100  # MLFLOW_MAX_POINTS for these tests, so thinning shows on small jobs


@pytest.fixture(scope="session")
def mlflow_server():
    server = MlflowServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def mlflow_stack(request, redis_server, mlflow_server, tmp_path_factory):
    """API, worker and Celery beat mirroring into the real MLflow server."""
    yield from _running_stack(request.param, redis_server.url, tmp_path_factory, beat=True, env_overrides={
        "MLFLOW_TRACKING_URI": mlflow_server.url, "MLFLOW_UI_URL": "http://mlflow.example:5000",
        "MLFLOW_FLUSH_SECONDS": "0.5", "MLFLOW_BACKFILL_SECONDS": "2", "MLFLOW_MAX_POINTS": str(MAX_POINTS),
        "PUBLIC_URL": "http://bplab.example:8000"})


@pytest.fixture
def mlflow_api(mlflow_stack):
    with mlflow_stack.client() as client:
        yield client


def wait_mirror(client: httpx.Client, job_id: int, state: str = "synced", timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["mlflow"]["state"] == state:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} mirror is {job['mlflow']} after {timeout}s")
