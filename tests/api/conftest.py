"""The API in-process (tests/support/inprocess.py), as flaskr's tests have it: `app` from `create_app()`
on a real database and Redis (no server, no Celery worker; submitted jobs wait in a queue nobody
reads), and `client`, an httpx client over WSGI. `train` runs the worker's own training code for a
job, in this process."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.databases import BACKENDS, drop_database
from tests.support.inprocess import http, make_app


@pytest.fixture(scope="module", params=BACKENDS)
def app(request, redis_server, tmp_path_factory):
    flask_app, url = make_app(request.param, redis_server.url, tmp_path_factory)
    yield flask_app
    drop_database(url)


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

