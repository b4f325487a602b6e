"""The schema is the migrations': they go up and down on both databases and agree with the models."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from services.migrate import upgrade
from services.settings import ROOT
from services.store.db import get_engine
from tests.support.databases import both_databases


def _config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    return config


@both_databases
def test_migrations_upgrade_and_downgrade(database_url):
    upgrade(database_url)
    tables = set(inspect(get_engine(database_url)).get_table_names())
    assert {"jobs", "job_payloads", "job_tags", "metric_chunks", "step_arrays", "sweeps", "bplab_alembic_version"} <= tables
    command.check(_config(database_url))  # the models and the migrations agree
    command.downgrade(_config(database_url), "base")
    assert set(inspect(get_engine(database_url)).get_table_names()) <= {"bplab_alembic_version"}
    upgrade(database_url)
