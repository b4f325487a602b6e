"""Bring a database to the latest schema: `python -m services.migrate` (runs on start-up)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from .settings import ROOT, get_settings


def upgrade(database_url: str | None = None) -> None:
    """`alembic upgrade head` against `database_url` (default: DATABASE_URL)."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url or get_settings().database_url
    command.upgrade(config, "head")


if __name__ == "__main__":
    upgrade()
