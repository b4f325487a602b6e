"""Fixtures shared by the tests that need services: real Redis, SQLite and PostgreSQL databases,
live stacks (gunicorn + Celery workers) and a real MLflow tracking server."""

from __future__ import annotations

import os
import uuid

import pytest

from services.settings import Settings
from tests.support.services import MlflowServer, Redis, Stack, create_postgres_database, drop_postgres_database, postgres_available

BACKENDS = ["sqlite", "postgresql"]
MAX_POINTS = 100  # MLFLOW_MAX_POINTS of the MLflow stacks, so thinning shows on small jobs


def pytest_report_header(config):
    return [f"REQUIRE_POSTGRES={os.environ.get('REQUIRE_POSTGRES', '0')} (1: a missing PostgreSQL fails instead of skipping)"]


@pytest.fixture(scope="session")
def redis_server():
    server = Redis()
    yield server
    server.stop()


def new_database(backend: str, tmp_path_factory) -> str:
    """A fresh empty database of `backend` (PostgreSQL skipped with the reason when absent, unless REQUIRE_POSTGRES=1)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'bplab.db'}"
    if not postgres_available():
        reason = "PostgreSQL is not reachable on 127.0.0.1:5432"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} and REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    return create_postgres_database()


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        drop_postgres_database(url)


@pytest.fixture
def database_url(request, tmp_path_factory):
    """A fresh empty database of the parametrized backend (`indirect=True`)."""
    url = new_database(request.param, tmp_path_factory)
    yield url
    drop_database(url)


both_databases = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)


def settings_for(database_url: str, redis_url: str = "redis://127.0.0.1:1/0", **overrides) -> Settings:
    """Settings for code run inside the test process: its own queue, no MLflow, quick flushes."""
    values = {"database_url": database_url, "redis_url": redis_url, "bplab_queue": f"bplab-test-{uuid.uuid4().hex[:8]}",
              "mlflow_tracking_uri": "", "mlflow_ui_url": "", "flush_seconds": 0.05, **overrides}
    return Settings(**values)


def running_stack(backend: str, redis_url: str, tmp_path_factory, **kwargs):
    """A started Stack on a fresh database of `backend`; stopped and dropped afterwards."""
    url = new_database(backend, tmp_path_factory)
    stack = Stack(url, redis_url, **kwargs)
    stack.backend = backend
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        drop_database(url)


def fault_backend() -> str:
    """The store the fault tests run on: PostgreSQL (as in production, and always in CI), or SQLite
    where this machine has no PostgreSQL (said in the test's id)."""
    return "postgresql" if postgres_available() or os.environ.get("REQUIRE_POSTGRES") == "1" else "sqlite"


@pytest.fixture(scope="session", params=BACKENDS)
def stack(request, redis_server, tmp_path_factory):
    """API + one worker on SQLite and on PostgreSQL (session-wide: starting processes is slow)."""
    yield from running_stack(request.param, redis_server.url, tmp_path_factory, env_overrides={
        "MAX_PARAMS": "200000", "MAX_STEPS": "2000000", "MAX_SAMPLES": "20000", "MAX_REQUEST_BYTES": "2000000"})


@pytest.fixture
def api(stack):
    with stack.client() as client:
        yield client


@pytest.fixture(scope="session")
def mlflow_server():
    server = MlflowServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def mlflow_stack(request, redis_server, mlflow_server, tmp_path_factory):
    """API, a training worker, Celery beat and the MLflow worker mirroring into the real MLflow server."""
    yield from running_stack(request.param, redis_server.url, tmp_path_factory, beat=True, mirror=True, env_overrides={
        "MLFLOW_TRACKING_URI": mlflow_server.url, "MLFLOW_UI_URL": "http://mlflow.example:5000",
        "MLFLOW_FLUSH_SECONDS": "0.5", "MLFLOW_MAX_POINTS": str(MAX_POINTS), "PUBLIC_URL": "http://bplab.example:8000"})


@pytest.fixture
def mlflow_api(mlflow_stack):
    with mlflow_stack.client() as client:
        yield client
