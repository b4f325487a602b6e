"""The API in-process, as flaskr's tests have it: `make_app` builds `create_app()` on a fresh database
and a real Redis, `http` is an httpx client over WSGI, `token` makes a token as an operator does, and
`Training` wraps the app so that every job queued by a request is trained at once with the worker's
own code (what a worker would do, without one), so clients and the CLI can `--wait` in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import httpx
from flask import Flask
from sqlalchemy import select

from services.api import create_app
from services.migrate import upgrade
from services.settings import Settings
from services.store.db import session_factory
from services.store.models import Computation, Job, JobStatus
from tests.support.databases import new_database, settings_for

# Small limits for fast tests, and a submission rate no test run reaches (test_auth pins the rate limit itself).
LIMITS = {"max_params": 200_000, "max_steps": 2_000_000, "max_samples": 20_000, "max_request_bytes": 2_000_000,
          "max_dataset_bytes": 20_000_000, "submit_rate_limit": "100000/second",
          "webhook_allowed_hosts": "hooks.example.com"}  # the OpenAPI example's host (registering calls nothing)


def make_app(backend: str, redis_url: str, tmp_path_factory, **overrides) -> tuple[Flask, str]:
    url = new_database(backend, tmp_path_factory)
    upgrade(url)
    settings = settings_for(url, redis_url, **{**LIMITS, **overrides})
    return create_app({"SETTINGS": settings, "TESTING": True}), url


def http(flask_app: Flask | Callable, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(transport=httpx.WSGITransport(app=flask_app), base_url="http://127.0.0.1", headers=headers)


def token(flask_app: Flask, name: str, owner: str | None = None) -> str:
    """A new token from the `flask tokens create` command, as an operator makes one."""
    done = flask_app.test_cli_runner().invoke(args=["tokens", "create", name, *(["--owner", owner] if owner else [])])
    assert done.exit_code == 0, done.output
    return done.stdout.strip()  # (stderr may say the token opens no MLflow)


class Training:
    """WSGI middleware: after any request that may queue jobs (a POST), train every queued job, and the
    ones their sweeps queue next, in this process with the worker's code; after a request for a
    landscape or a step's gradients or trace, compute what was asked for, as a training worker would."""

    def __init__(self, app: Flask):
        self.app, self.settings = app, app.config["SETTINGS"]
        self.sessions = session_factory(self.settings.database_url)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        body = b"".join(self.app(environ, start_response))
        if environ["REQUEST_METHOD"] == "POST" and not environ["PATH_INFO"].endswith("/cancel"):
            self.train_queued()
        elif environ["PATH_INFO"].endswith(("/landscape", "/gradients", "/trace")):
            compute_asked(self.settings)
        return [body]

    def train_queued(self) -> None:
        from worker.training import train

        while True:
            with self.sessions() as s:
                queued = list(s.scalars(select(Job.id).where(Job.status == JobStatus.queued).order_by(Job.id)))
            if not queued:
                return
            for job_id in queued:
                train(job_id, self.settings)


def compute_asked(settings: Settings) -> int:
    """Compute everything the API has asked a worker for and none has answered (landscapes, replayed steps), with
    the worker's code; how many."""
    from worker.computations import compute

    with session_factory(settings.database_url)() as session:
        waiting = list(session.scalars(select(Computation.id).where(Computation.result.is_(None), Computation.error.is_(None))))
    for landscape_id in waiting:
        compute(landscape_id, settings)
    return len(waiting)
