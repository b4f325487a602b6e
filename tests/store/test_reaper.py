"""The reaper's decisions on both databases: requeue a silent job (fencing its old worker), fail it
after MAX_ATTEMPTS, end one past its hard time limit, and cancel one its user had asked to stop."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from services.jobs.time_limits import TimeLimits
from services.migrate import upgrade
from services.store import jobs
from services.store.columns import utcnow
from services.store.db import session_factory
from services.store.models import Dispatch, Job, JobStatus
from services.store.reaper import Reaped
from tests.support.databases import both_databases, settings_for
from tests.support.specs import moons
from tests.support.store import reap, silence


def queued_job(sessions, spec: dict | None = None, limits: TimeLimits | None = None) -> int:
    with sessions.begin() as s:
        return jobs.create_job(s, spec or moons(), total_steps=40, n_params=33, time_limits=limits).id




def outbox_rows(s, job_id: int) -> int:
    return s.scalar(select(func.count()).select_from(Dispatch).where(Dispatch.job_id == job_id))




@both_databases
def test_reaper_requeues_a_silent_job_fences_its_old_worker_and_fails_it_after_max_attempts(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url, heartbeat_timeout=5, max_attempts=3)
    job_id = queued_job(sessions)
    with sessions.begin() as s:
        assert outbox_rows(s, job_id) == 1
        lease = jobs.claim(s, job_id)
        assert outbox_rows(s, job_id) == 0  # claimed: out of the outbox
    assert reap(sessions, settings) == {}  # a fresh heartbeat: left alone
    silence(sessions, job_id)
    assert reap(sessions, settings) == {job_id: Reaped.requeued}
    with sessions() as s:
        job = s.get(Job, job_id)
        assert (job.status, job.lease, job.attempt) == (JobStatus.queued, None, 1)
        assert outbox_rows(s, job_id) == 1  # to be sent again
        assert not jobs.heartbeat(s, job_id, lease)  # the old worker is fenced off
        assert jobs.progress(s, job_id, lease, 10, 0.5) is None
    for attempt in (2, 3):
        with sessions.begin() as s:
            assert jobs.claim(s, job_id) is not None
        silence(sessions, job_id)
        assert reap(sessions, settings)[job_id] == (Reaped.requeued if attempt < settings.max_attempts else Reaped.worker_lost)
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.status is JobStatus.failed and job.error["reason"] == "worker_lost" and job.error["attempts"] == 3
        assert "MAX_ATTEMPTS=3" in job.error["message"]


@both_databases
def test_reaper_ends_a_job_past_its_hard_time_limit_even_while_it_heartbeats(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url, heartbeat_timeout=5)
    job_id = queued_job(sessions, limits=TimeLimits(soft=5, hard=10))
    with sessions.begin() as s:
        lease = jobs.claim(s, job_id)
        s.execute(update(Job).where(Job.id == job_id).values(attempt_started_at=utcnow() - timedelta(seconds=11), step=123))
    with sessions.begin() as s:
        assert jobs.heartbeat(s, job_id, lease)
    assert reap(sessions, settings) == {job_id: Reaped.hard_time_limit}
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.status is JobStatus.failed
        assert job.error == {"reason": "time_limit", "limit": "hard", "seconds": 10, "step": 123,
                             "message": "hard time limit of 10 s exceeded at step 123 (attempt 1)"}
        assert not jobs.heartbeat(s, job_id, lease)


@both_databases
def test_a_job_cancelled_while_its_worker_was_gone_ends_cancelled_not_requeued(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url, heartbeat_timeout=5)
    job_id = queued_job(sessions)
    with sessions.begin() as s:
        jobs.claim(s, job_id)
    with sessions.begin() as s:
        assert jobs.cancel(s, job_id) == JobStatus.running  # asked of a running job: its worker would stop at its next flush
    silence(sessions, job_id)
    assert reap(sessions, settings) == {job_id: Reaped.cancelled}
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.status is JobStatus.cancelled and job.error["reason"] == "cancelled"
        assert outbox_rows(s, job_id) == 0
