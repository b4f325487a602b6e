"""The cost of recording: a training step with every step recorded (the statistics, and the worker
writing them to the store) against the same step with recording off; then the same with the MLflow
worker and an MLflow server running on the same cores (niced as `make up` runs them); and metric
points per second into MLflow through `log_batch` (what the MLflow worker calls) against
`log_metric` called per point. All in one run, on case (c) of bench/engine_vs_torch.py.

    .venv/bin/python bench/tracking.py [--steps 2000] [--repeats 3]

Target (the service issue): the worker's recording ≤ 1.10× a step with recording off. Target (the
diagnoses issue): recording with diagnoses ≤ 1.02× the same recording with `diagnose: false`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
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
from services.up import MLFLOW_NICENESS
from tests.support.services import MlflowServer


def recorded_run(spec: dict, settings: Settings) -> float:
    """µs per step of the training worker's own path: the engine, the recorder, the store writes."""
    from worker.training import train

    sessions = session_factory(settings.database_url)
    sizes = plan(parse_spec(spec))
    with sessions.begin() as s:
        job_id = jobs.create_job(s, spec, total_steps=sizes.total_steps, n_params=sizes.n_params, experiment="bench-tracking",
                                 mirrored=bool(settings.mlflow_tracking_uri)).id
    train(job_id, settings)
    with sessions() as s:
        return jobs.get_job(s, job_id).summary["duration_seconds"] / sizes.total_steps * 1e6


def mirror_loop(database_url: str, tracking_uri: str) -> None:
    """The MLflow worker's passes, once a second, as `make up` runs them (bench/tracking.py --mirror-loop)."""
    from worker.mlflow.mirror import mirror_pass

    settings = Settings(database_url=database_url, mlflow_tracking_uri=tracking_uri)
    while True:
        mirror_pass(settings)
        time.sleep(settings.mlflow_flush_seconds)


def mlflow_points_per_second(url: str, batch_points: int, single_points: int) -> tuple[float, float]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(url)
    run_id = client.create_run(client.create_experiment(f"bench-{uuid.uuid4().hex[:6]}")).info.run_id
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    for start in range(0, batch_points, 1000):
        client.log_batch(run_id, metrics=[Metric("batched", float(i), now, i) for i in range(start, min(start + 1000, batch_points))])
    batched = batch_points / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(single_points):
        client.log_metric(run_id, "single", float(i), now, i)
    return batched, single_points / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps of case (c) per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-points", type=int, default=30_000)
    parser.add_argument("--per-point", type=int, default=200, help="points sent with one log_metric call each")
    parser.add_argument("--mirror-loop", nargs=2, metavar=("DATABASE_URL", "TRACKING_URI"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mirror_loop:
        mirror_loop(*args.mirror_loop)
        return
    case = CASES["c"]
    X, y = case_data(case, np.random.default_rng(0))
    tmp = tempfile.mkdtemp(prefix="bplab-bench-")
    plain = Settings(database_url=f"sqlite:///{tmp}/plain.db", mlflow_tracking_uri="", flush_seconds=0.5)
    upgrade(plain.database_url)
    spec = engine_spec(case, X, y, "float32", every=1, gradients="summary", steps=args.steps)
    print(f"case (c) {'-'.join(map(str, case['sizes']))}, batch {case['batch']}, {args.steps} steps, float32, every step recorded "
          f"(gradient summaries); median of {args.repeats} alternating runs\n")
    off, summaries, worker, undiagnosed, worker_undiagnosed = [], [], [], [], []
    summarised = engine_spec(case, X, y, "float32", every=1, gradients="summary", steps=args.steps + 10)
    for _ in range(args.repeats):
        off.append(time_engine(engine_spec(case, X, y, "float32", every=10**9, gradients="none", steps=args.steps + 10), args.steps))
        summaries.append(time_engine(summarised, args.steps))
        undiagnosed.append(time_engine({**summarised, "diagnose": False}, args.steps))
        worker.append(recorded_run(spec, plain))
        worker_undiagnosed.append(recorded_run({**spec, "diagnose": False}, plain))
    off_us, summaries_us, worker_us, undiagnosed_us, worker_undiagnosed_us = (
        float(np.median(v)) for v in (off, summaries, worker, undiagnosed, worker_undiagnosed))
    print(f"{'engine, recording off':<62}{off_us:>9.0f} µs/step")
    print(f"{'engine, summaries every step (no I/O)':<62}{summaries_us:>9.0f} µs/step  {summaries_us / off_us:.2f}×")
    print(f"{'training worker: summaries every step -> SQL store':<62}{worker_us:>9.0f} µs/step  {worker_us / off_us:.2f}×"
          f"  (target ≤ 1.10×)")
    print(f"{'engine, summaries every step, diagnose: false':<62}{undiagnosed_us:>9.0f} µs/step")
    print(f"{'training worker, diagnose: false':<62}{worker_undiagnosed_us:>9.0f} µs/step")
    print(f"diagnoses: the engine's recording {summaries_us / undiagnosed_us:.3f}× without them, the worker's "
          f"{worker_us / worker_undiagnosed_us:.3f}× (target ≤ 1.02×)", flush=True)
    small = CASES["b"]  # where a step is mostly Python, the diagnoser's own cost shows most
    Xb, yb = case_data(small, np.random.default_rng(0))
    with_b = engine_spec(small, Xb, yb, "float32", every=1, gradients="summary", steps=args.steps * 5 + 10)
    pairs = [(time_engine(with_b, args.steps * 5), time_engine({**with_b, "diagnose": False}, args.steps * 5)) for _ in range(args.repeats)]
    on_b, off_b = (float(np.median(v)) for v in zip(*pairs, strict=True))
    print(f"diagnoses on case (b) {'-'.join(map(str, small['sizes']))}, batch {small['batch']}, every step recorded: {on_b:.1f} against "
          f"{off_b:.1f} µs/step, {on_b / off_b:.3f}× (target ≤ 1.02×)", flush=True)

    server = MlflowServer().start()
    mirrored = Settings(database_url=f"sqlite:///{tmp}/mirrored.db", mlflow_tracking_uri=server.url, flush_seconds=0.5)
    upgrade(mirrored.database_url)
    loop = subprocess.Popen(["nice", "-n", str(MLFLOW_NICENESS), sys.executable, __file__, "--mirror-loop", mirrored.database_url, server.url],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        time.sleep(15)  # the MLflow server's start-up keeps both cores busy for a while
        with_mlflow = [recorded_run(spec, mirrored) for _ in range(args.repeats)]
        with_us = float(np.median(with_mlflow))
        print(f"{'the same, MLflow worker + server running on these cores':<62}{with_us:>9.0f} µs/step  {with_us / off_us:.2f}×")
        batched, single = mlflow_points_per_second(server.url, args.batch_points, args.per_point)
        print(f"\nMLflow ingest: log_batch (the MLflow worker's call, 1,000 points each) {batched:,.0f} points/s; "
              f"log_metric per point {single:,.0f} points/s; ratio {batched / single:,.0f}×")
    finally:
        loop.kill()
        server.stop()


if __name__ == "__main__":
    main()
