"""Databases and settings for tests: fresh SQLite and PostgreSQL databases (PostgreSQL skipped with the
reason where it is absent, unless REQUIRE_POSTGRES=1), `both_databases` to run a test on each (with
conftest.py's `database_url` fixture), settings for code run in the test process, and live stacks."""

from __future__ import annotations

import os
import uuid

import pytest

from services.settings import Settings
from tests.support.services import Stack, create_postgres_database, drop_postgres_database, postgres_available

BACKENDS = ["sqlite", "postgresql"]
MAX_POINTS = 100  # MLFLOW_MAX_POINTS_PER_KEY and MLFLOW_MAX_LOSS_POINTS of the MLflow stacks, so thinning shows on small jobs



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
