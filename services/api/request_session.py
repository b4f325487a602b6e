"""The database session of a request: opened on first use, closed when the request ends.

A route that writes owns its transaction: `with transaction() as session:` commits what the block
did (and anything the request read before it), or rolls it all back if the block raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app, g
from sqlalchemy.orm import Session

from services.store.db import session_factory


def db() -> Session:
    if "db" not in g:
        g.db = session_factory(current_app.config["SETTINGS"].database_url)()
    return g.db


@contextmanager
def transaction() -> Iterator[Session]:
    """The request's unit of work: committed when the block ends, rolled back if it raises."""
    session = db()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()
