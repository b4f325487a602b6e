"""INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL alike.

One statement per table, dialect and set of columns, built once and run with all the rows as
parameters (SQLAlchemy batches them into multi-row VALUES), so a flush of many chunks costs no
SQL compilation.
"""

from __future__ import annotations

import functools

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.sql.dml import Insert


@functools.lru_cache(maxsize=64)
def _statement(dialect: str, table: Table, columns: tuple[str, ...], key_columns: tuple[str, ...]) -> Insert:
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_update(index_elements=list(key_columns),
                                      set_={c: stmt.excluded[c] for c in columns if c not in key_columns})


def upsert(session: Session, model: type[DeclarativeBase], rows: list[dict], key_columns: list[str]) -> None:
    """Insert rows (all with the same columns), replacing those whose key already exists."""
    if not rows:
        return
    stmt = _statement(session.get_bind().dialect.name, model.__table__, tuple(rows[0]), tuple(key_columns))
    session.connection().execute(stmt, rows)


def insert_missing(session: Session, model: type[DeclarativeBase], row: dict, key_columns: list[str]) -> None:
    """Insert `row` unless a row with its key exists (INSERT ... ON CONFLICT DO NOTHING)."""
    stmt = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(model.__table__)
    session.connection().execute(stmt.on_conflict_do_nothing(index_elements=key_columns), [row])
