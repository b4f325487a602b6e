"""Alembic environment: metadata from services.store.models, URL from the service's settings."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from services.migrate import VERSION_TABLE
from services.settings import get_settings
from services.store.db import get_engine
from services.store.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _ours(name, type_, parent_names) -> bool:
    """Autogenerate compares only our tables, not Optuna's."""
    return type_ != "table" or name in target_metadata.tables


def database_url() -> str:
    return config.attributes.get("database_url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True,
                      render_as_batch=True, version_table=VERSION_TABLE, include_name=_ours)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = get_engine(database_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True,
                          render_as_batch=connection.dialect.name == "sqlite", version_table=VERSION_TABLE, include_name=_ours)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
