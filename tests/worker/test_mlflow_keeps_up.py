"""MLflow keeps up (the MLflow worker's own code in this process against a real `mlflow server`):
every ended job's run is FINISHED with params and summary before any job's series is sent; a long
job's series never holds back the runs of jobs that end after it; a wide, long job is thinned as
documented with its loss complete; the job's mirror block and /readyz's backlog say how far behind."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from mlflow import MlflowClient
from sqlalchemy import func, select

from engine.problem import plan
from engine.spec import parse_spec
from services.migrate import upgrade
from services.store import jobs, metrics, mirror_cursor
from services.store.db import session_factory
from services.store.models import Job, JobStatus
from tests.support.databases import both_databases, fault_backend, settings_for
from tests.support.specs import moons
from tests.support.store import write_series
from worker.mlflow.mirror import mirror_pass
from worker.training import train


def ended_job(sessions, keys: list[str], steps: int, experiment: str = "default", status: JobStatus = JobStatus.succeeded) -> int:
    """A job of `steps` recorded steps of `keys` that has ended, as the training worker leaves one."""
    spec = moons(steps=steps, epochs=None, record={"every": 1, "gradients": "none"})
    with sessions.begin() as s:
        job_id = jobs.create_job(s, {k: v for k, v in spec.items() if v is not None}, total_steps=steps, n_params=33,
                                 experiment=experiment).id
    write_series(sessions, job_id, keys, steps)
    with sessions.begin() as s:
        lease = jobs.claim(s, job_id)
    with sessions.begin() as s:
        jobs.finish(s, job_id, lease, status, summary={"final_loss": 0.25, "steps_completed": steps})
    return job_id


@pytest.mark.parametrize("database_url", [fault_backend()], indirect=True)  # one store: 500 runs take a minute
def test_500_ended_jobs_runs_are_finished_with_summaries_before_any_series(database_url, mlflow_server):
    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url, mlflow_log_models=False)
    experiment = f"keeps-up-{uuid.uuid4().hex[:8]}"  # the MLflow server is shared with other tests
    ids = [ended_job(sessions, ["loss", "grad_norm/dense_1.weight"], 20, experiment) for _ in range(500)]
    with sessions() as s:
        assert mirror_cursor.backlog(s) == (500, 500, 0)  # nothing counted yet: the mirror has not looked
    assert mirror_pass(settings, seconds=600) == dict.fromkeys(ids, "synced")
    with sessions() as s:
        rows = s.execute(select(Job.mlflow_run_finished_at, Job.mirror_series_at, Job.mirror_points, Job.mirror_points_due,
                                Job.mlflow_run_id)).all()
        assert mirror_cursor.backlog(s) == (0, 0, 0)
    assert max(r.mlflow_run_finished_at for r in rows) <= min(r.mirror_series_at for r in rows)  # runs first, series after
    assert all(r.mirror_points == r.mirror_points_due == 40 for r in rows)
    client = MlflowClient(mlflow_server.url)
    runs = {r.info.run_id: r for r in client.search_runs([client.get_run(rows[0].mlflow_run_id).info.experiment_id], max_results=1000)}
    assert len(runs) == 500
    for run in runs.values():
        assert run.info.status == "FINISHED" and run.data.params["lr"] == "0.02" and run.data.metrics["summary/final_loss"] == 0.25
        assert run.data.metrics["loss"] == metrics_last_loss(sessions, int(run.data.tags["job_id"]))
    one = rows[0].mlflow_run_id
    assert [m.step for m in sorted(client.get_metric_history(one, "loss"), key=lambda m: m.step)] == list(range(20))


def metrics_last_loss(sessions, job_id: int) -> float:
    with sessions() as s:
        return metrics.last_points(s, job_id, ["loss"])["loss"][1]


@both_databases
def test_a_long_jobs_series_holds_back_no_run_of_the_jobs_that_end_after_it(database_url, mlflow_server):
    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url, mlflow_log_models=False,
                            mlflow_max_points_per_key=2000, mlflow_max_loss_points=2000)
    big = ended_job(sessions, [f"grad_norm/dense_{i}.weight" for i in range(40)], 30_000)  # 40 × 2,000 points to send
    passes = threading.Thread(target=mirror_pass, args=(settings,), kwargs={"seconds": 300})
    passes.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sessions() as s:
                if s.get(Job, big).mirror_points > 1000:  # its series is going out
                    break
            time.sleep(0.1)
        later = [ended_job(sessions, ["loss"], 30) for _ in range(10)]
        while time.monotonic() < deadline:
            with sessions() as s:
                finished = s.scalar(select(func.count()).where(Job.id.in_(later), Job.mlflow_run_finished_at.is_not(None)))
                big_job = s.get(Job, big)
            if finished == len(later):
                break
            time.sleep(0.1)
        assert finished == len(later)
        assert big_job.mirror_state.value == "pending" and big_job.mirror_points < big_job.mirror_points_due  # still sending
        with sessions() as s:
            behind = mirror_cursor.backlog(s)
        assert behind[0] == 0 and behind[2] > 0  # every run finished, points still waiting
    finally:
        passes.join()
    client = MlflowClient(mlflow_server.url)
    for job_id in later:
        with sessions() as s:
            job = s.get(Job, job_id)
        assert client.get_run(job.mlflow_run_id).info.status == "FINISHED"


def test_a_24_layer_job_of_5000_steps_is_thinned_as_documented_with_its_loss_complete(tmp_path, mlflow_server):
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url, mlflow_log_models=False,
                            mlflow_max_points_per_key=100)  # the loss keeps MLFLOW_MAX_LOSS_POINTS' default, 5,000
    spec = {"model": {"layers": [{"units": 4, "activation": "relu"}] * 23 + [{"units": 1, "activation": "sigmoid"}]},
            "loss": "bce", "data": {"builtin": "moons", "n_samples": 64}, "optimizer": {"name": "sgd", "lr": 0.01},
            "batch_size": 64, "steps": 5000, "record": {"every": 1}}
    sizes = plan(parse_spec(spec))
    with sessions.begin() as s:
        job_id = jobs.create_job(s, spec, total_steps=sizes.total_steps, n_params=sizes.n_params).id
    train(job_id, settings)
    assert mirror_pass(settings, seconds=600) == {job_id: "synced"}
    with sessions() as s:
        job, stored = s.get(Job, job_id), metrics.read(s, job_id)
    assert len(stored) > 140  # norms, ratios and dead fractions of 24 layers
    client = MlflowClient(mlflow_server.url)
    run = client.get_run(job.mlflow_run_id)
    assert run.info.status == "FINISHED" and job.mlflow_run_finished_at is not None
    loss = sorted((m.step, m.value) for m in client.get_metric_history(job.mlflow_run_id, "loss"))
    assert loss == list(zip(stored["loss"][0].tolist(), stored["loss"][1].tolist(), strict=True)) and len(loss) == 5000  # complete
    for key in ("grad_norm/dense_12.weight", "update_ratio/dense_24.weight"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(job.mlflow_run_id, key))
        steps, values = metrics.downsample(*stored[key], 100)
        assert history == list(zip(steps.tolist(), values.tolist(), strict=True)) and len(history) <= 100
    assert run.data.tags["bplab.thinned"] == "statistics: buckets of 200 points, each keeping its first, min, max and last"
    assert job.mirror_points == job.mirror_points_due == sum(len(client.get_metric_history(job.mlflow_run_id, k)) for k in stored)
