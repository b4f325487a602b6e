"""What the store and the workers keep from clients: a database error reaches a job's `error` or
`mlflow.error` as its kind only (no SQL, no parameters, no traceback), and the SQLite file holding
token hashes and every owner's data is readable by its user only."""

from __future__ import annotations

import stat

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from services.jobs.public_errors import describe
from services.migrate import upgrade
from services.store import jobs
from services.store.db import session_factory
from services.store.models import Job
from tests.support.databases import settings_for
from worker.mlflow.mirror import failure
from worker.training import train


def test_a_database_error_is_described_without_its_sql(tmp_path):
    sessions = session_factory(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with sessions() as s, pytest.raises(SQLAlchemyError) as raised:
        s.execute(text("SELECT secret_column FROM owners_tokens WHERE token_hash = :h"), {"h": "bpl_secret"})
    said = describe(raised.value)
    assert "SELECT" not in said and "bpl_secret" not in said and "OperationalError" in said
    _state, reason = failure(raised.value)
    assert "SELECT" not in reason and "token_hash" not in reason


def test_a_job_that_fails_says_why_without_a_traceback(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    sessions = session_factory(url)
    with sessions.begin() as s:  # a spec the worker cannot load: valid JSON, not a job
        job_id = jobs.create_job(s, {"model": "broken"}, total_steps=1, n_params=1).id
    assert train(job_id, settings_for(url)) == "failed"
    with sessions() as s:
        error = s.get(Job, job_id).error
    assert set(error) == {"reason", "message"} and "Traceback" not in error["message"]


def test_the_sqlite_store_is_readable_by_its_user_only(tmp_path):
    path = tmp_path / "var" / "bplab.db"
    upgrade(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)  # an older store is made private when the service opens it
    from services.store.db import private_file

    private_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
