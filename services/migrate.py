"""Bring a database to the latest schema: `python -m services.migrate` (runs on start-up); and
whether a database is there already (`/readyz` asks)."""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from .settings import ROOT, get_settings

# Our own version table: Optuna keeps its study tables (and its own `alembic_version`) in the same database.
VERSION_TABLE = "bplab_alembic_version"


def _config(database_url: str | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url or get_settings().database_url
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """`alembic upgrade <revision>` against `database_url` (default: DATABASE_URL)."""
    command.upgrade(_config(database_url), revision)


@functools.lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration this code ships."""
    return ScriptDirectory.from_config(_config("sqlite://")).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The migration the database is at (None: none applied)."""
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


if __name__ == "__main__":
    upgrade()
