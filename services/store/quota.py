"""Each owner's recording quota (MAX_OWNER_BYTES): a job reserves what it may record when it is
created, in the same transaction, with one conditional UPDATE of the owner's row, so two submissions
at once cannot both take the last room, and the check costs the same however many jobs an owner has."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .models import OwnerUsage
from .upsert import insert_missing


def usage(session: Session, owner: str) -> int:
    """What the owner's jobs have reserved in all."""
    return session.scalar(select(OwnerUsage.reserved_bytes).where(OwnerUsage.owner == owner)) or 0


def reserve(session: Session, owner: str, nbytes: int, limit: int) -> bool:
    """Add `nbytes` to the owner's reservations if that stays within `limit`; False (nothing changed) if not."""
    insert_missing(session, OwnerUsage, {"owner": owner, "reserved_bytes": 0}, ["owner"])
    done = session.execute(update(OwnerUsage).where(OwnerUsage.owner == owner, OwnerUsage.reserved_bytes + nbytes <= limit)
                           .values(reserved_bytes=OwnerUsage.reserved_bytes + nbytes), execution_options={"synchronize_session": False})
    return done.rowcount == 1


def release(session: Session, owner: str, nbytes: int) -> None:
    """Give `nbytes` back (a deleted job's reservation)."""
    session.execute(update(OwnerUsage).where(OwnerUsage.owner == owner)
                    .values(reserved_bytes=func.greatest(OwnerUsage.reserved_bytes - nbytes, 0)
                            if session.get_bind().dialect.name == "postgresql" else func.max(OwnerUsage.reserved_bytes - nbytes, 0)),
                    execution_options={"synchronize_session": False})
