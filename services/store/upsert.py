"""INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

BATCH_ROWS = 500  # SQLite allows 32,766 bound variables per statement


def upsert(session: Session, model, rows: list[dict], key_columns: list[str]) -> None:
    """Insert rows, replacing those whose key already exists."""
    if not rows:
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for i in range(0, len(rows), BATCH_ROWS):
        stmt = insert(model).values(rows[i:i + BATCH_ROWS])
        others = {c: stmt.excluded[c] for c in rows[0] if c not in key_columns}
        session.execute(stmt.on_conflict_do_update(index_elements=key_columns, set_=others))
