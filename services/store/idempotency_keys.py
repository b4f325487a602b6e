"""`Idempotency-Key`: a retried POST returns what the first one created instead of creating it again.

The key is remembered per owner in the transaction that creates the resource, with a fingerprint of
the request (method, path and the body as canonical JSON); the same key with another request is
a conflict.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from .columns import utcnow
from .models import IdempotencyKey


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def find(session: Session, owner: str, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, (owner, key))


def remember(session: Session, owner: str, key: str, request_fingerprint: str, resource: str, resource_id: int) -> None:
    """Record the key with what it created (the caller commits, with the resource)."""
    session.add(IdempotencyKey(owner=owner, key=key, fingerprint=request_fingerprint, resource=resource,
                               resource_id=resource_id, created_at=utcnow()))


def forget(session: Session, resource: str, resource_id: int) -> None:
    """Drop the keys that name a resource being deleted: the same key and request then create it anew
    instead of replaying what no longer exists (the caller commits, with the deletion)."""
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.resource == resource, IdempotencyKey.resource_id == resource_id))
