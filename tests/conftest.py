"""Fixtures shared by the tests that need services: real Redis, SQLite and PostgreSQL databases,
live stacks (the API server + Celery workers) and a real MLflow tracking server. The helpers behind
them are in tests/support/ (databases.py, services.py); test modules import from there."""

from __future__ import annotations

import os

import pytest

from tests.support.databases import BACKENDS, MAX_POINTS, drop_database, new_database, running_stack
from tests.support.services import MlflowServer, Redis


def pytest_report_header(config):
    return [f"REQUIRE_POSTGRES={os.environ.get('REQUIRE_POSTGRES', '0')} (1: a missing PostgreSQL fails instead of skipping)"]


@pytest.fixture(scope="session")
def redis_server():
    server = Redis()
    yield server
    server.stop()


@pytest.fixture
def database_url(request, tmp_path_factory):
    """A fresh empty database of the parametrized backend (`indirect=True`)."""
    url = new_database(request.param, tmp_path_factory)
    yield url
    drop_database(url)


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
        "MLFLOW_FLUSH_SECONDS": "0.5", "MLFLOW_MAX_POINTS_PER_KEY": str(MAX_POINTS), "MLFLOW_MAX_LOSS_POINTS": str(MAX_POINTS), "PUBLIC_URL": "http://bplab.example:8000"})


@pytest.fixture
def mlflow_api(mlflow_stack):
    with mlflow_stack.client() as client:
        yield client
