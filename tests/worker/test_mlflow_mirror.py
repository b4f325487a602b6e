"""The MLflow worker's own code in this process against a real `mlflow server`: a job of 60 keys over
30,000 steps mirrors completely; parallel mirrors create one parent run per sweep; a sweep whose
parent run could not be finished (MLflow down) is finished by a later pass."""

from __future__ import annotations

import threading

from mlflow import MlflowClient
from sqlalchemy import update

from services.jobs.time_limits import TimeLimits
from services.migrate import upgrade
from services.store import diagnoses, jobs, metrics
from services.store.db import session_factory
from services.store.models import Job, JobStatus, MirrorState, Sweep, SweepStatus
from services.sweeps import advance
from services.sweeps.request import parse_request
from tests.support.databases import both_databases, settings_for
from tests.support.services import free_port
from tests.support.specs import moons, small
from tests.support.store import write_series
from worker.mlflow.mirror import mirror_pass
from worker.mlflow.sweep_runs import SweepRunBusy, ensure_sweep_run, finish_pending_sweeps, finish_sweep_run, sweep_key


@both_databases
def test_a_job_of_60_keys_over_30000_steps_mirrors_completely(database_url, mlflow_server):
    upgrade(database_url)
    steps, n_keys = 30_000, 60
    sessions = session_factory(database_url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url, mlflow_max_points_per_key=100, mlflow_max_loss_points=100)
    spec = moons(steps=steps, epochs=None, record={"every": 1, "gradients": "none"})
    with sessions.begin() as s:
        job_id = jobs.create_job(s, {k: v for k, v in spec.items() if v is not None}, total_steps=steps, n_params=33).id
    keys = [f"grad_norm/dense_{i}.weight" for i in range(n_keys)]
    write_series(sessions, job_id, keys, steps)
    with sessions.begin() as s:
        lease = jobs.claim(s, job_id)
    with sessions.begin() as s:
        jobs.finish(s, job_id, lease, JobStatus.cancelled, error={"reason": "cancelled"})
    assert mirror_pass(settings) == {job_id: "synced"}  # the MLflow worker's pass
    with sessions() as s:
        job, last = s.get(Job, job_id), metrics.last_points(s, job_id)
    client = MlflowClient(mlflow_server.url)
    run = client.get_run(job.mlflow_run_id)
    assert run.info.status == "KILLED" and job.mirror_error is None
    assert run.info.start_time == int(job.started_at.timestamp() * 1000) and run.info.end_time == int(job.finished_at.timestamp() * 1000)
    with sessions() as s:
        stored = metrics.read(s, job_id, keys)
    total = 0
    for key in keys:
        history = sorted((m.step, m.value) for m in client.get_metric_history(job.mlflow_run_id, key))
        expected = metrics.downsample(*stored[key], 100)  # thinned as the REST metrics downsample, ending on the last
        assert history == list(zip(expected[0].tolist(), expected[1].tolist(), strict=True))
        assert len(history) <= 100 and history[-1][0] == last[key][0] == steps - 1
        total += len(history)
    assert (job.mirror_points, job.mirror_points_due) == (total, total) and job.mlflow_run_finished_at is not None
    assert mirror_pass(settings) == {}  # nothing left behind


@both_databases
def test_parallel_mirrors_create_one_parent_run_per_sweep(database_url, mlflow_server):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        sweep_id = advance.create_sweep(s, parse_request({"base": small(), "space": {"optimizer.lr": [0.1]},
                                                          "experiment": f"parents-{free_port()}"}), TimeLimits(60, 120)).id
    client = MlflowClient(mlflow_server.url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url)
    found: list[str] = []
    busy: list[int] = []
    start = threading.Barrier(6)

    def mirror() -> None:
        start.wait()
        try:
            found.append(ensure_sweep_run(client, sessions, sweep_id, settings))
        except SweepRunBusy:
            busy.append(1)  # its job's mirror stays pending and tries again on the next pass
    threads = [threading.Thread(target=mirror) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found.append(ensure_sweep_run(client, sessions, sweep_id, settings))  # the next pass
    assert len(set(found)) == 1 and len(found) + len(busy) == 7
    with sessions() as s:
        sweep = s.get(Sweep, sweep_id)
        assert sweep.mlflow_parent_run_id == found[0] and sweep.mirror_lock is None
        experiment = client.get_experiment_by_name(sweep.experiment).experiment_id
        runs = client.search_runs([experiment], f"tags.sweep_key = '{sweep_key(sweep)}'")
    assert [r.info.run_id for r in runs] == found[:1]


@both_databases
def test_a_sweep_run_left_unfinished_by_an_outage_is_finished_by_the_backfill(database_url, mlflow_server):
    upgrade(database_url)
    sessions = session_factory(database_url)
    with sessions.begin() as s:
        sweep_id = advance.create_sweep(s, parse_request({"base": small(), "space": {"optimizer.lr": [0.1]}}), TimeLimits(60, 120)).id
    down = settings_for(database_url, mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    up = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url)
    assert finish_sweep_run(sweep_id, up) is None  # still running: nothing to finish
    with sessions.begin() as s:
        s.execute(update(Sweep).where(Sweep.id == sweep_id).values(status=SweepStatus.cancelled))
    assert finish_sweep_run(sweep_id, down) is MirrorState.pending
    with sessions() as s:
        sweep = s.get(Sweep, sweep_id)
        assert sweep.mirror_state is MirrorState.pending and "Connection" in sweep.mirror_error and sweep.mirror_lock is None
    assert finish_pending_sweeps(up) == {sweep_id: MirrorState.synced}
    assert finish_pending_sweeps(up) == {}  # done once
    with sessions() as s:
        sweep = s.get(Sweep, sweep_id)
    assert sweep.mirror_state is MirrorState.synced and sweep.mirror_error is None
    assert MlflowClient(mlflow_server.url).get_run(sweep.mlflow_parent_run_id).info.status == "KILLED"


@both_databases
def test_renames_retags_archives_and_deletions_reach_the_run(database_url, mlflow_server):
    from services.store import housekeeping

    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url)
    experiment = f"kept-{free_port()}"
    with sessions.begin() as s:
        job_id = jobs.create_job(s, moons(), total_steps=40, n_params=33, name="before", experiment=experiment,
                                 tags={"team": "lab", "gone": "soon"}).id
    with sessions.begin() as s:
        lease = jobs.claim(s, job_id)
    with sessions.begin() as s:
        jobs.finish(s, job_id, lease, JobStatus.cancelled, error={"reason": "cancelled"})
    assert mirror_pass(settings) == {job_id: "synced"}
    client = MlflowClient(mlflow_server.url)
    with sessions() as s:
        run_id = s.get(Job, job_id).mlflow_run_id
    assert client.get_run(run_id).info.run_name == "before"

    with sessions.begin() as s:
        housekeeping.set_metadata(s, s.get(Job, job_id), name="after", tags={"gone": None, "team": "ml", "new": "1"})
    assert mirror_pass(settings) == {job_id: "synced"}
    run = client.get_run(run_id)
    assert run.info.run_name == "after" and run.data.tags["job_name"] == "after"
    assert run.data.tags["team"] == "ml" and run.data.tags["new"] == "1" and "gone" not in run.data.tags
    assert run.info.status == "KILLED"  # the run's status and points are as they were
    assert mirror_pass(settings) == {}

    with sessions.begin() as s:
        assert housekeeping.set_archived(s, "local", experiment, True) == (1, 0)
    assert mirror_pass(settings) == {job_id: "synced"}
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    with sessions.begin() as s:
        housekeeping.set_archived(s, "local", experiment, False)
    mirror_pass(settings)
    assert client.get_run(run_id).info.lifecycle_stage == "active"

    with sessions.begin() as s:
        housekeeping.delete_job(s, s.get(Job, job_id))
    mirror_pass(settings)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    with sessions() as s:
        assert housekeeping.pending_deletions(s, 10) == []


@both_databases
def test_a_forks_run_is_nested_under_its_parents_and_holds_its_own_steps(database_url, mlflow_server):
    from worker.training import train

    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url)
    spec = moons(record={"every": 1, "gradients": "none"})
    with sessions.begin() as s:
        parent_id = jobs.create_job(s, spec, total_steps=40, n_params=33).id
        fork_id = jobs.create_job(s, {**spec, "optimizer": {"name": "adam", "lr": 0.005}}, total_steps=40, n_params=33,
                                  forked_from=(parent_id, 25)).id
    assert train(parent_id, settings) == "succeeded"
    assert mirror_pass(settings)[parent_id] == "synced"
    assert train(fork_id, settings) == "succeeded"
    assert mirror_pass(settings)[fork_id] == "synced"
    with sessions() as s:
        parent, fork = s.get(Job, parent_id), s.get(Job, fork_id)
    client = MlflowClient(mlflow_server.url)
    run = client.get_run(fork.mlflow_run_id)
    assert run.data.tags["mlflow.parentRunId"] == run.data.tags["forked_from_run"] == parent.mlflow_run_id
    assert (run.data.tags["forked_from_job"], run.data.tags["forked_from_step"]) == (str(parent_id), "25")
    assert [m.step for m in sorted(client.get_metric_history(fork.mlflow_run_id, "loss"), key=lambda m: m.step)] == list(range(25, 40))


@both_databases
def test_a_diagnosis_found_after_the_run_was_made_reaches_its_tags(database_url, mlflow_server):
    """The run is made while the job trains; what the diagnoser finds later goes out with the final status."""
    upgrade(database_url)
    sessions = session_factory(database_url)
    settings = settings_for(database_url, mlflow_tracking_uri=mlflow_server.url)
    with sessions.begin() as s:
        job_id = jobs.create_job(s, small(), total_steps=10, n_params=9).id
    with sessions.begin() as s:
        lease = jobs.claim(s, job_id)
    assert mirror_pass(settings) == {job_id: "pending"}  # its run, made while it trains, has no diagnosis yet
    with sessions.begin() as s:
        diagnoses.write(s, job_id, [{"event": "began", "kind": "dead_units", "layer": "dense_1", "step": 4, "severity": "warning",
                                     "sentence": "dead", "evidence": {"units": [0, 1], "of": 2}}])
        jobs.finish(s, job_id, lease, JobStatus.succeeded, error=None)
    mirror_pass(settings)
    with sessions() as s:
        run_id = s.get(Job, job_id).mlflow_run_id
    assert MlflowClient(mlflow_server.url).get_run(run_id).data.tags["diagnosis.dead_units"] == "step 4: 2/2 units of dense_1"
