"""The `Idempotency-Key` header on POST /jobs and POST /sweeps, as the routes use it.

Before creating: a key seen before with the same request gives the resource it created (replayed);
with a different request, 409. Creating: the route's transaction commits the resource with its key
(`commit_with_key`), and if a concurrent request with the same key won the race, its resource is
the answer.
"""

from __future__ import annotations

from typing import Any

from flask import request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from services.store import idempotency_keys
from services.store.models import IdempotencyKey

from .auth import owner
from .errors import ApiError
from .request_session import db

HEADER = "Idempotency-Key"


class IdempotencyHeaders(BaseModel):
    """The submission's optional key (checked by the operation before the view runs)."""

    model_config = ConfigDict(extra="ignore")
    idempotency_key: str | None = Field(
        default=None, alias=HEADER, pattern=r"^[\x21-\x7e]{1,255}$",  # visible ASCII, as in the IETF draft's examples
        description="the same key and body return the resource the first request created (a UUID is a good key); another body is a 409")


def _key() -> str | None:
    return request.headers.get(HEADER)


def _fingerprint(body: Any) -> str:
    return idempotency_keys.fingerprint(request.method, request.path, body)


def _same_request(prior: IdempotencyKey, body: Any, resource: str) -> int:
    if prior.resource != resource or prior.fingerprint != _fingerprint(body):
        raise ApiError("idempotency-key-reused", f"{HEADER} {prior.key!r} was already used with a different request "
                       f"(it created {prior.resource} {prior.resource_id}); send a new key with a new request", field=HEADER)
    return prior.resource_id


def replay_or_none(body: Any, resource: str) -> int | None:
    """The id a previous request with this key created, None if the key is new (or absent)."""
    key = _key()
    if key is None:
        return None
    prior = idempotency_keys.find(db(), owner(), key)
    return None if prior is None else _same_request(prior, body, resource)


def commit_with_key(body: Any, resource: str, resource_id: int) -> int | None:
    """Commit the request's transaction (the new resource) with its key. None when it is ours; the
    winner's id when a concurrent request with the same key committed first (ours is rolled back)."""
    session, key = db(), _key()
    if key is not None:
        idempotency_keys.remember(session, owner(), key, _fingerprint(body), resource, resource_id)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        prior = idempotency_keys.find(session, owner(), key) if key is not None else None
        if prior is None:
            raise
        return _same_request(prior, body, resource)
    return None


def accepted(resource: BaseModel, location: str | None = None, replayed: bool = False) -> tuple[BaseModel, int, dict[str, str]]:
    """A 202 with the resource, its Location, and whether it answers a repeated Idempotency-Key."""
    headers = {"Location": location} if location else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return resource, 202, headers
