"""The worker's training code in this process, on both databases: a retry resumes from its checkpoint
bit for bit, duplicate deliveries train once, a worker without the lease writes nothing, a job that
cannot start fails at once with the reason, and the soft time limit stops a job keeping its points."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import update

from engine.training import Trainer
from services.jobs.time_limits import TimeLimits
from services.migrate import upgrade
from services.store import checkpoints, jobs, metrics, step_arrays
from services.store.db import session_factory
from services.store.models import Checkpoint, Job, JobStatus
from services.store.reaper import Reaped
from tests.support.databases import both_databases, settings_for
from tests.support.reference import clean_run
from tests.support.specs import IRIS as SPEC
from tests.support.specs import moons
from tests.support.store import reap, silence
from worker.recorder import LeaseLost, Recorder
from worker.training import train


def queued_job(sessions, spec: dict = SPEC, limits: TimeLimits | None = None) -> int:
    with sessions.begin() as s:
        trainer = Trainer(spec)
        return jobs.create_job(s, spec, total_steps=trainer.total_steps, n_params=trainer.problem.n_params, time_limits=limits).id


def stored(sessions, job_id: int) -> dict:
    with sessions() as s:
        return {k: [[int(a), float(b)] for a, b in zip(*pair, strict=True)] for k, pair in metrics.read(s, job_id).items()}


@both_databases
def test_a_retry_resumes_from_its_checkpoint_and_records_exactly_an_uninterrupted_run(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url, heartbeat_timeout=5, checkpoint_every=100)
    job_id = queued_job(sessions)
    # The first attempt: trains to step 370 (checkpoints at 100, 200, 300), writes its points, dies.
    with sessions.begin() as s:
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
    silence(sessions, job_id)
    assert reap(sessions, settings) == {job_id: Reaped.requeued}

    assert train(job_id, settings) == "succeeded"
    expected = clean_run(SPEC)
    assert stored(sessions, job_id) == expected["metrics"]  # every point once, each equal to the uninterrupted run's
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.attempt == 2 and job.status is JobStatus.succeeded
        assert job.model == expected["model"]
        assert step_arrays.steps(s, job_id, "gradients") == [g["step"] for g in expected["gradients"]]
        assert step_arrays.steps(s, job_id, "trace") == [t["step"] for t in expected["trace"]]
        at_350 = step_arrays.decode_gradients(step_arrays.read(s, job_id, "gradients", 350))
        assert {k: v.tolist() for k, v in at_350.items()} == next(g for g in expected["gradients"] if g["step"] == 350)["gradients"]
        assert s.get(Checkpoint, job_id) is None  # dropped once the job ended

    # A duplicate delivery of the same message afterwards does nothing.
    assert train(job_id, settings) == "not started: job is succeeded"
    assert len(stored(sessions, job_id)["loss"]) == len(expected["metrics"]["loss"])


@both_databases
def test_two_deliveries_at_once_train_the_job_once(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    job_id = queued_job(sessions)
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda: outcomes.append(train(job_id, settings))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["not started: job is running", "succeeded"], ["not started: job is succeeded", "succeeded"])
    with sessions() as s:
        assert s.get(Job, job_id).attempt == 1
    assert stored(sessions, job_id) == clean_run(SPEC)["metrics"]


@both_databases
def test_resume_without_the_lease_writes_nothing(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    job_id = queued_job(sessions)
    with sessions.begin() as s:
        jobs.claim(s, job_id)
    with pytest.raises(LeaseLost):
        Recorder(sessions, job_id, "not-the-lease", 0.05).resume(0)


@both_databases
def test_a_job_whose_checkpoint_cannot_be_read_fails_at_once_with_the_reason(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url, heartbeat_timeout=5)
    job_id = queued_job(sessions)
    with sessions.begin() as s:
        jobs.claim(s, job_id)
        checkpoints.save(s, job_id, Trainer(SPEC).state_dict())
        data = s.get(Checkpoint, job_id).data
        s.execute(update(Checkpoint).where(Checkpoint.job_id == job_id).values(data=data[: len(data) // 2]))  # cut short
    silence(sessions, job_id)
    assert reap(sessions, settings) == {job_id: Reaped.requeued}
    assert train(job_id, settings) == "failed"  # not left running for the reaper to retry MAX_ATTEMPTS times
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.status is JobStatus.failed and job.attempt == 2 and job.lease is None
        assert job.error["reason"] == "exception" and job.error["message"].startswith("could not start: BadZipFile")


@both_databases
def test_soft_time_limit_stops_a_job_and_says_so(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    job_id = queued_job(sessions, moons(epochs=100000, record={"every": 1, "max_bytes": 300_000_000}), limits=TimeLimits(soft=1, hard=3900))
    assert train(job_id, settings) == "failed"
    with sessions() as s:
        job = s.get(Job, job_id)
        error = job.error
        assert error["reason"] == "time_limit" and error["limit"] == "soft" and error["seconds"] == 1
        assert 0 < error["step"] < job.total_steps and "soft time limit of 1 s exceeded" in error["message"]
    assert [s for s, _ in stored(sessions, job_id)["loss"]] == list(range(error["step"]))  # what it trained is kept


@both_databases
def test_a_job_that_records_past_its_reservation_stops_with_reason_quota_keeping_its_points(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    job_id = queued_job(sessions, moons(epochs=50))
    with sessions.begin() as s:  # as if the estimate had missed: 100 steps' worth of points reserved
        s.execute(update(Job).where(Job.id == job_id).values(reserved_bytes=100 * 30 * 12))
    assert train(job_id, settings) == "failed"
    with sessions() as s:
        job = s.get(Job, job_id)
        error = job.error
        assert error["reason"] == "quota" and 0 < error["step"] < job.total_steps and "MAX_OWNER_BYTES" in error["message"]
    assert [s for s, _ in stored(sessions, job_id)["loss"]] == list(range(error["step"]))


@pytest.mark.parametrize("spec", [moons(epochs=7, record={"every": 3}), SPEC,
                                  moons(record={"gradients": "full", "trace": True, "every": 2}, dtype="float32")],
                         ids=["points", "iris-full-and-traces", "float32-full"])
def test_what_a_job_reserves_bounds_what_it_records(spec):
    """The reservation (engine.problem.recording_bytes) is an upper bound, so no job within its budget
    ever stops for quota; and not a loose one."""
    from engine.problem import recording_bytes

    trainer = Trainer(spec)
    recorder = Recorder(None, 0, "", 1e9)
    for record in trainer:
        recorder.add(record)
    p = trainer.problem
    reserved = recording_bytes(p.spec, p.X_train.shape[1], p.batch_size, p.total_steps, p.steps_per_epoch)
    assert recorder.recorded_bytes <= reserved < 4 * recorder.recorded_bytes
