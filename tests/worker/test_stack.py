"""A sweep's jobs that share a shape train as one stack, in this process on both databases: one claim
takes them all, each job records what it would have recorded alone, one member diverging or being
cancelled ends only it, and after a crash each member resumes from its own checkpoint."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from engine.training import Trainer
from services.jobs.time_limits import TimeLimits
from services.migrate import upgrade
from services.store import jobs, metrics
from services.store.db import session_factory
from services.store.models import Job, JobStatus
from services.store.reaper import Reaped
from services.sweeps import advance
from services.sweeps.request import parse_request
from tests.support.databases import both_databases, settings_for
from tests.support.reference import clean_run
from tests.support.specs import moons
from tests.support.store import reap, silence
from worker.recorder import Recorder
from worker.training import train

HOUR = TimeLimits(3600, 3900)
BASE = moons(epochs=4, record={"every": 3, "gradients": "full"}, optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9})


def sweep_jobs(sessions, settings, space: dict, seeds: int = 2, stack: bool = True, base: dict = BASE,
               limits: TimeLimits = HOUR) -> list[int]:
    request = parse_request({"base": base, "space": space, "seeds": seeds, "max_parallel": 100, "stack": stack})
    with sessions.begin() as s:
        sweep_id = advance.create_sweep(s, request, limits).id
    advance.advance(sessions, sweep_id, settings)
    with sessions() as s:
        return list(s.scalars(select(Job.id).where(Job.sweep_id == sweep_id).order_by(Job.id)))


def assert_recorded_as_alone(sessions, job_id: int) -> None:
    with sessions() as s:
        job = s.get(Job, job_id)
        spec, model, summary = job.spec, job.model, job.summary
        series = metrics.read(s, job_id)
    expected = clean_run(spec)
    assert set(series) == set(expected["metrics"]), job_id
    for key, points in expected["metrics"].items():  # bitwise: a member's results depend on its spec alone
        steps, values = series[key]
        assert steps.tolist() == [p[0] for p in points], (job_id, key)
        assert values.tolist() == [p[1] for p in points], (job_id, key)
    assert model["weights"] == expected["model"]["weights"] and model["biases"] == expected["model"]["biases"]
    for key in {"final_loss", "model_train_loss", "model_val_loss", "final_val_loss"} & set(expected["summary"]):
        assert summary[key] == expected["summary"][key], key


@both_databases
def test_one_claim_trains_a_sweeps_shapes_as_stacks_each_job_as_alone(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    # lr x seeds share one shape; the two batch sizes are two shapes, so two stacks
    ids = sweep_jobs(sessions, settings, {"optimizer.lr": [0.03, 0.1, 0.3], "batch_size": [10, 20]})
    with sessions() as s:
        keys = {job_id: s.get(Job, job_id).stack_key for job_id in ids}
    assert len(set(keys.values())) == 2 and None not in keys.values()
    assert train(ids[0], settings) == "succeeded"
    with sessions() as s:
        done = {j.id: (j.status, j.attempt) for j in s.scalars(select(Job).where(Job.id.in_(ids)))}
    same_shape = [i for i in ids if keys[i] == keys[ids[0]]]
    assert len(same_shape) == 6 and all(done[i] == (JobStatus.succeeded, 1) for i in same_shape)  # one claim, six jobs
    assert all(done[i][0] is JobStatus.queued for i in ids if i not in same_shape)  # the other shape waits for its own task
    for job_id in same_shape:
        assert_recorded_as_alone(sessions, job_id)
    assert train(same_shape[1], settings) == "not started: job is succeeded"  # its own message, delivered later


@both_databases
def test_one_member_diverging_or_cancelled_ends_only_it(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    base = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]}, "loss": "mse",
            "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 0.01}, "steps": 6000, "record": {"every": 10}}
    ids = sweep_jobs(sessions, settings, {"optimizer.lr": [0.01, 1e6, 0.02]}, seeds=1, base=base)

    def cancel_the_last_once_running():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sessions.begin() as s:
                if s.get(Job, ids[2]).step > 50:
                    jobs.cancel(s, ids[2])
                    return
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_the_last_once_running)
    canceller.start()
    assert train(ids[0], settings) == "succeeded"
    canceller.join()
    with sessions() as s:
        rows = {j.id: j for j in s.scalars(select(Job).where(Job.id.in_(ids)))}
        assert rows[ids[0]].status is JobStatus.succeeded and rows[ids[0]].step == rows[ids[0]].total_steps
        assert rows[ids[1]].status is JobStatus.diverged and rows[ids[1]].error["reason"] == "diverged"
        assert rows[ids[2]].status is JobStatus.cancelled and 0 < rows[ids[2]].step < rows[ids[2]].total_steps
        assert rows[ids[2]].error["reason"] == "cancelled"
        diverging = rows[ids[1]].spec
    assert_recorded_as_alone(sessions, ids[0])
    expected = clean_run(diverging)
    assert rows[ids[1]].error["step"] == expected["error"]["step"] and rows[ids[1]].error["quantity"] == expected["error"]["quantity"]


@both_databases
def test_after_a_crash_each_member_resumes_from_its_own_checkpoint(database_url):
    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, heartbeat_timeout=5, checkpoint_every=20)
    ids = sweep_jobs(sessions, settings, {"optimizer.lr": [0.05, 0.2]})
    # The first attempt, as a worker runs it: all four claimed at once, trained to step 27 (checkpoints at 20), then it dies.
    with sessions.begin() as s:
        claims = jobs.claim_stack_for_training(s, ids[0], 100)
    assert [job_id for job_id, _ in claims] == ids
    stack = Trainer.stack([Trainer(c.spec) for _, c in claims])
    members = list(stack.members)
    recorders = [Recorder(sessions, job_id, c.lease, 0.05) for job_id, c in claims]
    while stack.step < 27:
        done = stack.step_all()
        for member, record in done.records.items():
            recorders[members.index(member)].add(record)
        for k, recorder in enumerate(recorders):
            recorder.step = stack.step
            if stack.step % 20 == 0:
                recorder.flush(checkpoint=stack.state_dict(k))
    for recorder in recorders:
        recorder.flush()
    for job_id in ids:
        silence(sessions, job_id)
    assert reap(sessions, settings) == {job_id: Reaped.requeued for job_id in ids}
    assert train(ids[0], settings) == "succeeded"  # one claim again; each resumes at its checkpoint (step 20)
    for job_id in ids:
        with sessions() as s:
            assert s.get(Job, job_id).attempt == 2 and s.get(Job, job_id).status is JobStatus.succeeded
        assert_recorded_as_alone(sessions, job_id)


@both_databases
def test_stack_false_trains_one_job_at_a_time(database_url):
    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    ids = sweep_jobs(sessions, settings, {"optimizer.lr": [0.05, 0.2]}, stack=False)
    with sessions() as s:
        assert {s.get(Job, i).stack_key for i in ids} == {None}
    assert train(ids[0], settings) == "succeeded"
    with sessions() as s:
        assert [s.get(Job, i).status for i in ids[1:]] == [JobStatus.queued] * 3


@both_databases
def test_a_stack_flush_writes_each_job_under_its_own_lease(database_url):
    from worker.recorder import flush_together

    upgrade(database_url)
    sessions, settings = session_factory(database_url), settings_for(database_url)
    ids = sweep_jobs(sessions, settings, {"optimizer.lr": [0.05]}, seeds=3)
    with sessions.begin() as s:
        claims = jobs.claim_stack_for_training(s, ids[0], 100)
    stack = Trainer.stack([Trainer(c.spec) for _, c in claims])
    members = list(stack.members)
    recorders = [Recorder(sessions, job_id, c.lease, 0.05) for job_id, c in claims]
    for _ in range(5):
        done = stack.step_all()
        for member, record in done.records.items():
            recorders[members.index(member)].add(record)
    for recorder in recorders:
        recorder.step = stack.step
    with sessions.begin() as s:  # the second job is taken from this worker (requeued, deleted, ended by the reaper)
        s.get(Job, ids[1]).lease = "someone-else"
    results = flush_together(recorders, {recorders[2]: stack.state_dict(2)})
    assert results[recorders[1]] is None and results[recorders[0]].cancel_requested is False
    with sessions() as s:
        assert [s.get(Job, i).step for i in ids] == [5, 0, 5]
        assert metrics.read(s, ids[1]) == {} and metrics.read(s, ids[0])["loss"][0].tolist() == [0, 3]
        from services.store.models import Checkpoint
        assert s.get(Checkpoint, ids[2]).step == 5 and s.get(Checkpoint, ids[0]) is None


@both_databases
def test_the_soft_time_limit_is_checked_at_every_step_of_a_stack(database_url):
    """No flush and no checkpoint is due for an hour, yet each member stops at its soft limit (1 s),
    keeping what it trained."""
    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, flush_seconds=3600, checkpoint_every=10**9)
    long = moons(epochs=100000, record={"every": 50}, optimizer={"name": "sgd", "lr": 0.1})
    ids = sweep_jobs(sessions, settings, {"optimizer.lr": [0.05, 0.2]}, base=long, limits=TimeLimits(1, 3900))
    assert train(ids[0], settings) == "failed"
    with sessions() as s:
        for job_id in ids:
            job = s.get(Job, job_id)
            assert job.status is JobStatus.failed and job.error["reason"] == "time_limit" and job.error["limit"] == "soft"
            assert 0 < job.error["step"] == job.step < job.total_steps
            assert metrics.read(s, job_id)["loss"][0].tolist()[-1] < job.error["step"]  # what it trained is kept


def test_a_slow_flush_puts_the_next_off_so_writing_costs_at_most_a_fifth():
    from worker.training import FLUSH_COST_SHARE, FlushClock

    clock = FlushClock(0.5, last=100.0)
    assert not clock.due(100.4) and clock.due(100.5)  # every FLUSH_SECONDS while flushes are quick
    clock.last, clock.took = 200.0, 0.3  # a hundred jobs' points took 0.3 s to write
    assert not clock.due(200.0 + FLUSH_COST_SHARE * 0.3 - 0.01) and clock.due(200.0 + FLUSH_COST_SHARE * 0.3)
