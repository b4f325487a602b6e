"""Fair turns across owners and bounded stacks, with the worker's own code on both databases: the
owner with fewer jobs running, or whose last job started longest ago, goes first; a worker holding
another owner's message trains their job and sends its own back to the queue; nobody gives way to
an owner alone or to a job whose message was lost; a stack holds no more members than
STACK_MAX_BYTES allows."""

from __future__ import annotations

from datetime import timedelta

import redis
from sqlalchemy import update

from engine.problem import plan
from engine.spec import parse_spec
from engine.stacking import state_bytes
from services.broker.celery_config import queued_messages
from services.migrate import upgrade
from services.store import fairness, jobs
from services.store.columns import utcnow
from services.store.db import session_factory
from services.store.models import Dispatch, Job, JobStatus
from tests.support.databases import both_databases, settings_for
from tests.support.specs import SEED, moons
from worker.training import stack_limit, train


def _queued(sessions, owner: str, n: int = 1, sent: bool = True) -> list[int]:
    with sessions.begin() as s:
        ids = [jobs.create_job(s, SEED, total_steps=1, n_params=9, owner=owner, publishing=sent).id for _ in range(n)]
    return ids


def _running(sessions, job_id: int) -> None:
    with sessions.begin() as s:
        assert jobs.claim(s, job_id) is not None


@both_databases
def test_whose_turn_it_is(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    alice = _queued(sessions, "alice", 4)
    _running(sessions, alice[0])
    with sessions() as s:
        assert fairness.turn_instead(s, alice[1], 60) is None  # alice alone: nobody to give way to
    bob = _queued(sessions, "bob", 2)
    with sessions() as s:
        assert fairness.turn_instead(s, alice[1], 60) == bob[0]  # alice runs one, bob none: bob's oldest first
        assert fairness.turn_instead(s, bob[1], 60) is None
    _running(sessions, bob[0])
    with sessions() as s:  # one running each: the owner whose job started longest ago goes first
        assert fairness.turn_instead(s, bob[1], 60) == alice[1]
        assert fairness.turn_instead(s, alice[1], 60) is None
    with sessions.begin() as s:
        jobs.finish(s, alice[0], s.get(Job, alice[0]).lease, JobStatus.succeeded)
        jobs.finish(s, bob[0], s.get(Job, bob[0]).lease, JobStatus.succeeded)
    with sessions() as s:  # none running: who started last waits (one worker alternates between owners)
        assert fairness.turn_instead(s, bob[1], 60) == alice[1]
    _queued(sessions, "carol", sent=False)  # never sent: the outbox's to send, not a turn to give
    stale = _queued(sessions, "dave")[0]
    with sessions.begin() as s:  # sent long ago, never claimed: lost; the outbox sends it again
        s.execute(update(Dispatch).where(Dispatch.job_id == stale).values(sent_at=utcnow() - timedelta(seconds=120)))
    with sessions() as s:
        assert fairness.turn_instead(s, alice[1], 60) is None


@both_databases
def test_a_worker_trains_the_other_owners_job_and_sends_its_own_back(database_url, redis_server):
    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, redis_server.url)
    alice = _queued(sessions, "alice", 3)
    assert train(alice[0], settings) == "succeeded"  # alice alone: her jobs in order
    bob = _queued(sessions, "bob")[0]
    redis.Redis.from_url(redis_server.url).delete(settings.bplab_queue)
    outcome = train(alice[1], settings)  # the message is alice's; the turn is bob's
    assert outcome == f"job {bob} trained first (another owner's turn): succeeded", outcome
    with sessions() as s:
        assert jobs.status_of(s, alice[1]) is JobStatus.queued
    assert queued_messages(settings) == 1  # alice's job is back in the queue
    assert train(bob, settings).startswith("not started")  # bob's own message, later: nothing left to do
    assert train(alice[1], settings) == "succeeded"


def test_a_stack_holds_what_stack_max_bytes_allows():
    settings = settings_for("sqlite://", stack_max=100, stack_max_bytes=64 * 1024**2)
    small = moons()
    wide = moons(model={"layers": [{"units": 256, "activation": "relu"}, {"units": 256, "activation": "relu"},
                                   {"units": 1, "activation": "sigmoid"}]}, batch_size=32)
    per_member = state_bytes(parse_spec(wide), plan(parse_spec(wide)))
    assert 3_000_000 < per_member < 8_000_000  # ~67k parameters: a few MB each, as a stack of them measured
    assert stack_limit(small, settings) == 100  # small networks: STACK_MAX
    assert stack_limit(wide, settings) == 64 * 1024**2 // per_member < 100
    assert stack_limit(wide, settings.replace(stack_max_bytes=1)) == 1  # too big for any stack: trains alone
