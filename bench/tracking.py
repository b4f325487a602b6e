"""The cost of recording: a training step with every step recorded to the store and mirrored to
MLflow, against the same step with recording off; and metric points per second into MLflow through
our batched mirror against `mlflow.log_metric` called per point. All in one run, against a real
`mlflow server` (SQLite backend store) started here.

    .venv/bin/python bench/tracking.py [--steps 300] [--per-point 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_vs_torch import CASES, case_data, engine_spec, time_engine

from engine.problem import plan
from engine.spec import parse_spec
from services.migrate import upgrade
from services.settings import Settings
from services.store import jobs
from services.store.db import session_factory
from tests.support.services import MlflowServer


def recorded_run(spec: dict, settings: Settings) -> tuple[float, dict]:
    """µs per step of the worker's own path (engine + recorder + live MLflow mirror), and the job."""
    from worker.training import train

    sessions = session_factory(settings.database_url)
    sizes = plan(parse_spec(spec))
    with sessions() as s:
        job = jobs.create_job(s, spec, total_steps=sizes.total_steps, n_params=sizes.n_params, experiment="bench-tracking")
        s.commit()
        job_id = job.id
    train(job_id, settings)
    with sessions() as s:
        job = jobs.get_job(s, job_id)
        return job.summary["duration_seconds"] / sizes.total_steps * 1e6, {"mirror": job.mirror_state, "points": job.mirror_points}


def mlflow_points_per_second(url: str, batch_points: int, single_points: int) -> tuple[float, float]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(url)
    experiment = client.create_experiment(f"bench-{uuid.uuid4().hex[:6]}")
    run_id = client.create_run(experiment).info.run_id
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    for start in range(0, batch_points, 1000):
        client.log_batch(run_id, metrics=[Metric("batched", float(i), now, i) for i in range(start, min(start + 1000, batch_points))])
    batched = batch_points / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(single_points):
        client.log_metric(run_id, "single", float(i), now, i)
    single = single_points / (time.perf_counter() - t0)
    return batched, single


def wait_until_idle(pid: int, threshold: float = 10.0, timeout: float = 120.0) -> None:
    """Wait until a process and its children use under `threshold` % CPU over a second."""
    import psutil

    root = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = [root, *root.children(recursive=True)]
        for proc in procs:
            proc.cpu_percent(None)
        time.sleep(1.0)
        busy = sum(proc.cpu_percent(None) for proc in procs if proc.is_running())
        if busy < threshold:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps of case (c) per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-points", type=int, default=50_000)
    parser.add_argument("--per-point", type=int, default=200, help="points sent with one log_metric call each")
    args = parser.parse_args()
    case = CASES["c"]
    X, y = case_data(case, np.random.default_rng(0))
    server = MlflowServer().start()
    tmp = tempfile.mkdtemp(prefix="bplab-bench-")
    try:
        wait_until_idle(server.process.pid)  # its start-up keeps both cores busy for a while
        settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", mlflow_tracking_uri=server.url, mlflow_ui_url=server.url)
        upgrade(settings.database_url)
        print(f"case (c) {'-'.join(map(str, case['sizes']))}, batch {case['batch']}, {args.steps} steps, float32; "
              f"median of {args.repeats} alternating runs; MLflow server on this machine\n")
        off, summaries, full, info = [], [], [], {}
        for _ in range(args.repeats):
            off.append(time_engine(engine_spec(case, X, y, "float32", every=10**9, gradients="none", steps=args.steps + 10), args.steps))
            summaries.append(time_engine(engine_spec(case, X, y, "float32", every=1, gradients="summary", steps=args.steps + 10), args.steps))
            us, info = recorded_run(engine_spec(case, X, y, "float32", every=1, gradients="summary", steps=args.steps), settings)
            full.append(us)
        off, summaries, full = (float(np.median(v)) for v in (off, summaries, full))
        print(f"{'engine, recording off':<58}{off:>10.0f} µs/step")
        print(f"{'engine, summaries every step (no I/O)':<58}{summaries:>10.0f} µs/step  {summaries / off:.2f}×")
        print(f"{'worker: summaries every step -> SQL store + MLflow mirror':<58}{full:>10.0f} µs/step  {full / off:.2f}×"
              f"   (mirror {info['mirror']}, {info['points']:,} points sent)")
        batched, single = mlflow_points_per_second(server.url, args.batch_points, args.per_point)
        print(f"\nMLflow ingest: log_batch (our mirror's call, 1,000 points each) {batched:,.0f} points/s; "
              f"log_metric per point {single:,.0f} points/s; ratio {batched / single:,.0f}×")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
