"""API tokens: created once (the only time the secret is shown), kept only as SHA-256 hashes,
revocable. A token's owner owns every job and sweep submitted with it."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .columns import utcnow
from .models import ApiToken

PREFIX = "bpl_"


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def create(session: Session, name: str, owner: str | None = None) -> str:
    """A new token for `owner` (default: `name`); returns the secret, which is not stored."""
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, owner=owner or name, token_hash=hash_token(token), created_at=utcnow()))
    session.flush()
    return token


def owner_of(session: Session, token: str) -> str | None:
    """The owner of a live token, or None (unknown or revoked)."""
    return session.scalar(select(ApiToken.owner).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)))


def owner_named(session: Session, name: str) -> str | None:
    """The owner of the token called `name`."""
    return session.scalar(select(ApiToken.owner).where(ApiToken.name == name))


def revoke(session: Session, name: str) -> bool:
    result = session.execute(update(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
    return result.rowcount == 1


def listing(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))
