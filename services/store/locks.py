"""Short-lived locks on a row, for work one process at a time should do: advancing a sweep, writing
a job's or a sweep's MLflow run. A lock is a token and an expiry in two columns of the row, taken
with a compare-and-set; a holder that dies leaves it to expire after `seconds`.

Take and release a lock in transactions of their own (the caller's `with sessions.begin()`), so
other processes see it while the locked work runs.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from .columns import db_now

LOCK_SECONDS = 120


def acquire(session: Session, token_column: InstrumentedAttribute, until_column: InstrumentedAttribute, row_id: int,
            seconds: float = LOCK_SECONDS) -> str | None:
    """Take the lock of row `row_id` if it is free or expired: its token, or None when someone holds it."""
    model, token, now = token_column.class_, str(uuid.uuid4()), db_now(session)
    result = session.execute(update(model).where(model.id == row_id, or_(token_column.is_(None), until_column < now))
                             .values({token_column: token, until_column: now + timedelta(seconds=seconds)}))
    return token if result.rowcount == 1 else None


def extend(session: Session, token_column: InstrumentedAttribute, until_column: InstrumentedAttribute, row_id: int,
           token: str, seconds: float = LOCK_SECONDS, **values: object) -> bool:
    """Push the expiry of a lock we hold (writing `values` to the row too); False if we no longer hold it."""
    model = token_column.class_
    result = session.execute(update(model).where(model.id == row_id, token_column == token)
                             .values({until_column: db_now(session) + timedelta(seconds=seconds),
                                      **{getattr(model, name): value for name, value in values.items()}}))
    return result.rowcount == 1


def release(session: Session, token_column: InstrumentedAttribute, until_column: InstrumentedAttribute, row_id: int,
            token: str) -> None:
    model = token_column.class_
    session.execute(update(model).where(model.id == row_id, token_column == token).values({token_column: None, until_column: None}))
