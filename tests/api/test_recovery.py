"""Recovery in the store, on both databases, with the worker's own code in this process: the reaper's
decisions, a retry resuming from its checkpoint bit for bit, and duplicate deliveries."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from engine.training import Trainer
from services import checkpoints, jobs, metrics, step_arrays
from services.db import session_factory
from services.migrate import upgrade
from services.models import Checkpoint, Dispatch, Job, utcnow
from services.settings import get_settings
from services.time_limits import TimeLimits
from tests.support.reference import clean_run
from worker.recorder import LeaseLost, Recorder
from worker.run_job import run_job

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
SPEC = {"model": {"layers": [{"units": 6, "activation": "relu"}, {"units": 3, "activation": "softmax"}], "dropout": 0.1},
        "loss": "cross_entropy",
        "data": {"builtin": "iris", "validation_split": 0.2}, "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
        "epochs": 60, "seed": 5, "record": {"every": 1, "gradients": "full", "trace": [0, 250, 260]}}


def _settings(database_url: str, **overrides):
    return dataclasses.replace(get_settings(), database_url=database_url, mlflow_tracking_uri="", flush_seconds=0.05,
                               heartbeat_timeout=5, max_attempts=3, checkpoint_every=100, **overrides)


def _queued_job(sessions, spec=SPEC, limits: TimeLimits | None = None) -> int:
    with sessions() as s:
        trainer = Trainer(spec)
        job = jobs.create_job(s, spec, total_steps=trainer.total_steps, n_params=trainer.problem.n_params, time_limits=limits)
        s.commit()
        return job.id


def _silence(sessions, job_id: int, seconds: float = 60) -> None:
    """As if the job's worker stopped heartbeating `seconds` ago."""
    with sessions() as s:
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))
        s.commit()


@both_databases
def test_reaper_requeues_a_silent_job_fences_its_old_worker_and_fails_it_after_max_attempts(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), _settings(database_url)
    job_id = _queued_job(sessions)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Dispatch).where(Dispatch.job_id == job_id)) == 1
        lease = jobs.claim(s, job_id)
        assert s.scalar(select(func.count()).select_from(Dispatch).where(Dispatch.job_id == job_id)) == 0  # claimed: out of the outbox
        assert jobs.reap(s, settings) == {}  # a fresh heartbeat: left alone
    _silence(sessions, job_id)
    with sessions() as s:
        assert jobs.reap(s, settings) == {job_id: jobs.REQUEUED}
        job = s.get(Job, job_id)
        assert (job.status, job.lease, job.attempt) == ("queued", None, 1)
        assert s.scalar(select(func.count()).select_from(Dispatch).where(Dispatch.job_id == job_id)) == 1  # to be sent again
        assert not jobs.heartbeat(s, job_id, lease)  # the old worker is fenced off
        assert jobs.progress(s, job_id, lease, 10, 0.5) is None
        s.rollback()
    for attempt in (2, 3):
        with sessions() as s:
            assert jobs.claim(s, job_id) is not None
        _silence(sessions, job_id)
        with sessions() as s:
            outcome = jobs.reap(s, settings)[job_id]
        assert outcome == (jobs.REQUEUED if attempt < settings.max_attempts else "failed: worker lost")
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.status == "failed" and job.error["reason"] == "worker_lost" and job.error["attempts"] == 3
        assert "MAX_ATTEMPTS=3" in job.error["message"]


@both_databases
def test_reaper_ends_a_job_past_its_hard_time_limit_even_while_it_heartbeats(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), _settings(database_url)
    job_id = _queued_job(sessions, limits=TimeLimits(soft=5, hard=10))
    with sessions() as s:
        lease = jobs.claim(s, job_id)
        s.execute(update(Job).where(Job.id == job_id).values(attempt_started_at=utcnow() - timedelta(seconds=11), step=123))
        s.commit()
        assert jobs.heartbeat(s, job_id, lease)
        assert jobs.reap(s, settings) == {job_id: "failed: hard time limit"}
        job = s.get(Job, job_id)
        assert job.status == "failed"
        assert job.error == {"reason": "time_limit", "limit": "hard", "seconds": 10, "step": 123,
                             "message": "hard time limit of 10 s exceeded at step 123 (attempt 1)"}
        assert not jobs.heartbeat(s, job_id, lease)


@both_databases
def test_a_retry_resumes_from_its_checkpoint_and_records_exactly_an_uninterrupted_run(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), _settings(database_url)
    job_id = _queued_job(sessions)
    # The first attempt: trains to step 370 (checkpoints at 100, 200, 300), writes its points, dies.
    with sessions() as s:
        lease = jobs.claim(s, job_id)
    trainer, recorder = Trainer(SPEC), Recorder(sessions, job_id, lease, 0.05)
    for record in trainer:
        recorder.add(record)
        if trainer.step % 100 == 0:
            recorder.flush(checkpoint=trainer.state_dict())
        if trainer.step == 370:
            recorder.flush()
            break
    with sessions() as s:
        assert s.get(Checkpoint, job_id).step == 300
        assert metrics.read(s, job_id, ["loss"])["loss"][0].tolist() == list(range(370))  # more than the checkpoint holds
    _silence(sessions, job_id)
    with sessions() as s:
        assert jobs.reap(s, settings) == {job_id: jobs.REQUEUED}

    assert run_job(job_id, settings) == "succeeded"
    expected = clean_run(SPEC)
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.attempt == 2 and job.status == "succeeded"
        stored = {k: [[int(a), float(b)] for a, b in zip(*pair)] for k, pair in metrics.read(s, job_id).items()}
        assert stored == expected["metrics"]  # every point once, each equal to the uninterrupted run's
        assert job.model == expected["model"]
        assert step_arrays.steps(s, job_id, "gradients") == [g["step"] for g in expected["gradients"]]
        assert step_arrays.steps(s, job_id, "trace") == [t["step"] for t in expected["trace"]]
        at_350 = step_arrays.decode_gradients(step_arrays.read(s, job_id, "gradients", 350))
        assert {k: v.tolist() for k, v in at_350.items()} == next(g for g in expected["gradients"] if g["step"] == 350)["gradients"]
        assert s.get(Checkpoint, job_id) is None  # dropped once the job ended

    # A duplicate delivery of the same message afterwards does nothing.
    assert run_job(job_id, settings) == "not started: job is succeeded"
    with sessions() as s:
        assert metrics.read(s, job_id, ["loss"])["loss"][0].size == len(expected["metrics"]["loss"])


@both_databases
def test_two_deliveries_at_once_train_the_job_once(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), _settings(database_url)
    job_id = _queued_job(sessions)
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda: outcomes.append(run_job(job_id, settings))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["not started: job is running", "succeeded"] or sorted(outcomes) == ["not started: job is succeeded", "succeeded"]
    with sessions() as s:
        assert s.get(Job, job_id).attempt == 1
        assert {k: [[int(a), float(b)] for a, b in zip(*pair)] for k, pair in metrics.read(s, job_id).items()} == clean_run(SPEC)["metrics"]


def test_a_checkpoint_round_trips_exactly_without_pickle():
    trainer = Trainer(SPEC)
    for _ in range(123):
        trainer.train_step()
    state = trainer.state_dict()
    data = checkpoints.encode(state)  # decode() loads it with allow_pickle=False
    restored = Trainer(SPEC)
    restored.load_state_dict(checkpoints.decode(data))
    for _ in range(200):
        a, b = trainer.train_step(), restored.train_step()
        assert a.loss == b.loss and a.metrics == b.metrics
    assert trainer.model() == restored.model()


@both_databases
def test_resume_without_the_lease_writes_nothing(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    job_id = _queued_job(sessions)
    with sessions() as s:
        jobs.claim(s, job_id)
    with pytest.raises(LeaseLost):
        Recorder(sessions, job_id, "not-the-lease", 0.05).resume(0)


@both_databases
def test_a_job_cancelled_while_its_worker_was_gone_ends_cancelled_not_requeued(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), _settings(database_url)
    job_id = _queued_job(sessions)
    with sessions() as s:
        jobs.claim(s, job_id)
        assert jobs.cancel(s, job_id) == "running"  # asked of a running job: its worker would stop at its next flush
    _silence(sessions, job_id)
    with sessions() as s:
        assert jobs.reap(s, settings) == {job_id: "cancelled"}
        job = s.get(Job, job_id)
        assert job.status == "cancelled" and job.error["reason"] == "cancelled"
        assert s.scalar(select(func.count()).select_from(Dispatch).where(Dispatch.job_id == job_id)) == 0
