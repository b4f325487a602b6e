"""The client's and the CLI's tests in-process: `service` is `create_app()` on SQLite and a real Redis
(the client never touches the store: one database is enough), wrapped so that every job a request
queues is trained at once with the worker's code (tests/support/inprocess.Training); `api` is a
`Client` talking to it over WSGI."""

from __future__ import annotations

import httpx
import pytest

from bplab import Client
from tests.support.databases import drop_database
from tests.support.inprocess import Training, make_app


@pytest.fixture(scope="module")
def service(redis_server, tmp_path_factory):
    app, url = make_app("sqlite", redis_server.url, tmp_path_factory)
    yield Training(app)
    drop_database(url)


@pytest.fixture
def api(service):
    with Client("http://127.0.0.1", transport=httpx.WSGITransport(app=service)) as client:
        yield client
