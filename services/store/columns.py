"""Column types every table shares, so a quirk of one database is handled once, here."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import DateTime, Dialect, Enum, TypeDecorator, func, select
from sqlalchemy.orm import Session


def utcnow() -> datetime:
    """This process's clock: for moments no other host compares (a row's creation time shown to a person)."""
    return datetime.now(UTC)


def db_now(session: Session) -> datetime:
    """Now by the database's clock, the one clock every host shares: leases, heartbeats, the reaper's cut-offs, the
    hard time limit, locks and resend timers compare moments that different hosts wrote, and a host's own clock may
    run minutes off. PostgreSQL's `statement_timestamp()`; SQLite is a file on one host, whose clock it is."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(select(func.statement_timestamp()))
    return utcnow()


class UTCDateTime(TypeDecorator):
    """A moment in UTC, always read back timezone-aware. PostgreSQL keeps the zone; SQLite stores
    the text without it, so what it hands back is marked UTC here (it was written in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: store moments in UTC (services.store.columns.utcnow)")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def enum_column(enum_class: type[enum.Enum], length: int = 16) -> Enum:
    """A status enum stored as its value in a VARCHAR (no database enum type, no CHECK constraint),
    so adding a state needs no schema change while the code only ever sees enum members."""
    return Enum(enum_class, native_enum=False, create_constraint=False, length=length,
                values_callable=lambda members: [m.value for m in members], validate_strings=True)
