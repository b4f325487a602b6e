"""The outbox on both databases with a real Redis: a queued job's row is sent once the transaction
that queued it commits, marked sent, sent again only when the broker evidently lost it (sent long
ago, never claimed, the queue empty), and dropped when its job left the queue; a broker that is down
leaves every row unsent for the reaper's next pass."""

from __future__ import annotations

from datetime import timedelta

import redis
from sqlalchemy import select, update

from services.broker.celery_config import queued_messages
from services.migrate import upgrade
from services.store import jobs, outbox
from services.store.columns import utcnow
from services.store.db import session_factory
from services.store.models import Dispatch
from tests.support.databases import both_databases, settings_for
from tests.support.store import new_job


def _sent_at(sessions, job_id: int):
    with sessions() as s:
        return s.scalar(select(Dispatch.sent_at).where(Dispatch.job_id == job_id))


@both_databases
def test_rows_are_sent_once_and_again_only_when_the_broker_lost_them(database_url, redis_server):
    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, redis_server.url, resend_after=60)
    broker = redis.Redis.from_url(redis_server.url)
    with sessions.begin() as s:
        first, second = new_job(s), new_job(s)
        s.execute(update(Dispatch).values(created_at=utcnow() - timedelta(seconds=10)))  # past FRESH_SECONDS
    assert _sent_at(sessions, first) is None
    with sessions.begin() as s:
        assert outbox.pending(s) == 2
        assert outbox.send_pending(s, settings) == 2
    assert queued_messages(settings) == 2 and _sent_at(sessions, first) is not None
    with sessions.begin() as s:
        assert outbox.send_pending(s, settings) == 0  # sent, and not yet long ago: nothing to do
    broker.delete(settings.bplab_queue)  # a Redis restarted without persistence: the messages are gone
    with sessions.begin() as s:
        s.execute(update(Dispatch).where(Dispatch.job_id == first).values(sent_at=utcnow() - timedelta(seconds=120)))
        assert outbox.send_pending(s, settings) == 1  # the one sent long ago goes again
    assert queued_messages(settings) == 1
    with sessions.begin() as s:
        jobs.cancel(s, second)  # no longer queued: its row has nothing left to do
        outbox.send_pending(s, settings)
    with sessions() as s:
        assert s.scalar(select(Dispatch.job_id).where(Dispatch.job_id == second)) is None
        assert jobs.claim(s, first) is not None  # claimed: out of the outbox
        assert outbox.pending(s) == 0


@both_databases
def test_a_broker_that_is_down_leaves_the_rows_for_later(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    down = settings_for(database_url, "redis://127.0.0.1:1/0")
    with sessions.begin() as s:
        job_id = new_job(s)
        assert outbox.send(s, [job_id], down) == 0
    assert _sent_at(sessions, job_id) is None
    with sessions.begin() as s:
        outbox.add(s, new_job(s), marked_sent=True)
        marked = s.scalars(select(Dispatch.job_id).where(Dispatch.sent_at.is_not(None))).all()
        outbox.unmark_sent(s, list(marked))  # the publish after the commit failed: the reaper sends them
        assert s.scalar(select(Dispatch.job_id).where(Dispatch.sent_at.is_not(None))) is None
