"""An owner's recording quota: reservations add up per owner, one that does not fit changes nothing,
and a reservation rolls back with the transaction that made it (a job not created reserves nothing)."""

from __future__ import annotations

from services.migrate import upgrade
from services.store import quota
from services.store.db import session_factory
from tests.support.databases import both_databases


@both_databases
def test_reservations_add_up_per_owner_within_the_limit(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        assert quota.reserve(s, "alice", 600, 1000) and quota.reserve(s, "bob", 900, 1000)
    with sessions.begin() as s:
        assert not quota.reserve(s, "alice", 500, 1000)  # 1,100 would not fit
        assert quota.reserve(s, "alice", 400, 1000)
    with sessions.begin() as s:
        s.begin_nested()
        assert quota.reserve(s, "bob", 100, 1000)
        s.rollback()  # the job was not created after all
    with sessions() as s:
        assert (quota.usage(s, "alice"), quota.usage(s, "bob"), quota.usage(s, "carol")) == (1000, 900, 0)
