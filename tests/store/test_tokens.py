"""API tokens on both databases: the secret is shown once and only its SHA-256 kept; a revoked or
unknown token names nobody; names are unique."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.migrate import upgrade
from services.store import tokens
from services.store.db import session_factory
from services.store.models import ApiToken
from tests.support.databases import both_databases


@both_databases
def test_tokens_are_hashes_that_name_their_owner_until_revoked(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        secret = tokens.create(s, "laptop", "alice")
        other = tokens.create(s, "bob")
    assert secret.startswith(tokens.PREFIX) and len(secret) > 40 and secret != other
    with sessions() as s:
        stored = s.scalars(select(ApiToken.token_hash)).all()
        assert hashlib.sha256(secret.encode()).hexdigest() in stored and secret not in stored
        assert tokens.owner_of(s, secret) == "alice" and tokens.owner_of(s, other) == "bob"
        assert tokens.owner_of(s, secret + "x") is None and tokens.owner_named(s, "laptop") == "alice"
    with sessions.begin() as s:
        assert tokens.revoke(s, "laptop") and not tokens.revoke(s, "laptop")
    with sessions() as s:
        assert tokens.owner_of(s, secret) is None and tokens.owner_of(s, other) == "bob"
        assert [t.name for t in tokens.listing(s)] == ["laptop", "bob"]
    with pytest.raises(IntegrityError), sessions.begin() as s:
        tokens.create(s, "bob")
