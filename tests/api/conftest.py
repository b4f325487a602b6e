"""The API in-process, as flaskr's tests have it: `app` from `create_app()` on a real database and
Redis (no gunicorn, no Celery worker; submitted jobs wait in a queue nobody reads), and `client`, an
httpx client over WSGI. `train` runs the worker's own training code for a job, in this process."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from flask import Flask

from services.api import create_app
from services.migrate import upgrade
from tests.conftest import BACKENDS, drop_database, new_database, settings_for

# Small limits for fast tests, and a submission rate no test run reaches (test_auth pins the rate limit itself).
LIMITS = {"max_params": 200_000, "max_steps": 2_000_000, "max_samples": 20_000, "max_request_bytes": 2_000_000,
          "submit_rate_limit": "100000/second"}


def make_app(backend: str, redis_url: str, tmp_path_factory, **overrides) -> tuple[Flask, str]:
    url = new_database(backend, tmp_path_factory)
    upgrade(url)
    settings = settings_for(url, redis_url, **{**LIMITS, **overrides})
    return create_app({"SETTINGS": settings, "TESTING": True}), url


@pytest.fixture(scope="module", params=BACKENDS)
def app(request, redis_server, tmp_path_factory):
    flask_app, url = make_app(request.param, redis_server.url, tmp_path_factory)
    yield flask_app
    drop_database(url)


def http(flask_app: Flask, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(transport=httpx.WSGITransport(app=flask_app), base_url="http://127.0.0.1", headers=headers)


@pytest.fixture
def client(app):
    with http(app) as c:
        yield c


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def train(app) -> Callable[[int], str]:
    """Train a submitted job now, in this process, with the worker's code; its final status."""
    from worker.training import train as train_job

    return lambda job_id: train_job(job_id, app.config["SETTINGS"])


def token(flask_app: Flask, name: str, owner: str | None = None) -> str:
    """A new token from the `flask tokens create` command, as an operator makes one."""
    done = flask_app.test_cli_runner().invoke(args=["tokens", "create", name, *(["--owner", owner] if owner else [])])
    assert done.exit_code == 0, done.output
    return done.stdout.strip()  # (stderr may say the token opens no MLflow)
