"""The job state machine on both databases: one writer per transition, fenced by the lease, and
nothing committed by the store itself (the caller's transaction decides)."""

from __future__ import annotations

import pytest

from services.migrate import upgrade
from services.store import jobs, outbox
from services.store.db import session_factory
from services.store.models import Job, JobStatus
from tests.support.databases import both_databases
from tests.support.store import new_job


@both_databases
def test_lease_fences_writes_and_transitions(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        job_id = new_job(s)
    with sessions.begin() as s:
        lease = jobs.claim(s, job_id)
        assert lease and jobs.claim(s, job_id) is None  # claimed once
        assert jobs.progress(s, job_id, "someone-else", 3, 0.5) is None
        assert jobs.progress(s, job_id, lease, 3, 0.5) is False
    with sessions.begin() as s:
        assert jobs.cancel(s, job_id) == JobStatus.running
        assert jobs.progress(s, job_id, lease, 4, 0.4) is True  # the worker sees the request
    with sessions.begin() as s:
        assert not jobs.finish(s, job_id, "someone-else", JobStatus.succeeded)
        assert jobs.finish(s, job_id, lease, JobStatus.cancelled)
        assert jobs.get_job(s, job_id).status is JobStatus.cancelled
        assert not jobs.finish(s, job_id, lease, JobStatus.succeeded)  # terminal states are final
        with pytest.raises(ValueError, match="not a terminal status"):
            jobs.finish(s, job_id, lease, JobStatus.running)


@both_databases
def test_store_functions_leave_the_commit_to_their_caller(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions() as s:
        job_id = new_job(s)
        assert jobs.claim(s, job_id)
        s.rollback()  # the caller changes its mind: nothing of the job, its outbox row or its claim remains
    with sessions() as s:
        assert s.get(Job, job_id) is None and outbox.pending(s) == 0
    with sessions.begin() as s:
        job_id = new_job(s)
    with sessions() as s:
        assert jobs.claim(s, job_id)
        assert jobs.cancel(s, job_id) == JobStatus.running
        s.rollback()
    with sessions() as s:
        job = s.get(Job, job_id)
        assert (job.status, job.attempt, job.cancel_requested) == (JobStatus.queued, 0, False) and outbox.pending(s) == 1


@both_databases
def test_cancelling_a_queued_job_ends_it_and_empties_its_outbox_row(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        job_id = new_job(s)
    with sessions.begin() as s:
        assert jobs.cancel(s, job_id) == JobStatus.cancelled
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.error["reason"] == "cancelled" and job.finished_at is not None and outbox.pending(s) == 0
        assert jobs.claim(s, job_id) is None  # it never starts
