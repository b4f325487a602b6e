"""Row locks on both databases: one holder at a time, a holder's values written only while it holds
the lock, and a lock whose holder died expires."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from services.migrate import upgrade
from services.store import locks
from services.store.columns import utcnow
from services.store.db import session_factory
from services.store.models import Job
from tests.support.databases import both_databases
from tests.support.store import new_job

LOCK = (Job.mirror_lock, Job.mirror_lock_until)


@both_databases
def test_one_holder_at_a_time_and_an_expired_lock_is_free(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        job_id = new_job(s)
    with sessions.begin() as s:
        token = locks.acquire(s, *LOCK, job_id)
    with sessions.begin() as s:
        assert token and locks.acquire(s, *LOCK, job_id) is None  # held
        assert locks.extend(s, *LOCK, job_id, token, mirror_error="by the holder")
        assert not locks.extend(s, *LOCK, job_id, "not-the-token", mirror_error="by someone else")
    with sessions() as s:
        assert s.get(Job, job_id).mirror_error == "by the holder"
    with sessions.begin() as s:
        locks.release(s, *LOCK, job_id, "not-the-token")  # only the holder releases
        assert locks.acquire(s, *LOCK, job_id) is None
        locks.release(s, *LOCK, job_id, token)
    with sessions.begin() as s:
        again = locks.acquire(s, *LOCK, job_id)
        assert again and again != token
        s.execute(update(Job).where(Job.id == job_id).values(mirror_lock_until=utcnow() - timedelta(seconds=1)))  # its holder died
    with sessions.begin() as s:
        taken = locks.acquire(s, *LOCK, job_id)
        assert taken and taken != again
        assert not locks.extend(s, *LOCK, job_id, again)  # the dead holder's token no longer counts
