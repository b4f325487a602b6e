"""What a replay costs, and what keeping checkpoints for it costs training: case (b) 2-16-16-1 of
bench/engine_vs_torch.py, a 100,000-step job trained by the training worker's own code into a SQLite
store at the default checkpoint cadence (engine/checkpoint_cadence.py) and with `record.checkpoints: 0`;
then steps of it replayed as the API asks a worker to (worker/computations.py: from the latest kept
checkpoint at or before the step, read from the store), and one replayed from step 0 for comparison.

    .venv/bin/python bench/replay.py [--steps 100000] [--repeats 3]

Targets (the replay issue): replaying any step of a 100,000-step job of (b) ≤ 1 s at the default
cadence; the cadence's cost to training ≤ 1.05× the same job keeping no checkpoints.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_vs_torch import CASES, case_data, engine_spec

from engine.problem import build_problem, plan
from engine.replay import record_at
from engine.spec import parse_spec
from services.migrate import upgrade
from services.settings import Settings
from services.store import checkpoints, computations, jobs
from services.store.db import session_factory


def trained(spec: dict, settings: Settings) -> tuple[int, float]:
    """A job trained by the worker's own path; its id and its training time (the summary's duration)."""
    from worker.training import train

    sessions = session_factory(settings.database_url)
    sizes = plan(parse_spec(spec))
    with sessions.begin() as s:
        job_id = jobs.create_job(s, spec, total_steps=sizes.total_steps, n_params=sizes.n_params, experiment="bench-replay",
                                 mirrored=False).id
    assert train(job_id, settings) == "succeeded"
    with sessions() as s:
        return job_id, jobs.get_job(s, job_id).summary["duration_seconds"]


def replayed(job_id: int, step: int, settings: Settings) -> tuple[float, int]:
    """Step `step` replayed as the API asks for it: the worker's computation; its wall time and where it started."""
    from worker.computations import compute

    sessions = session_factory(settings.database_url)
    with sessions.begin() as s:
        row_id = computations.ask(s, job_id, "replay", {"step": step}).id
    started = time.perf_counter()
    compute(row_id, settings)
    seconds = time.perf_counter() - started
    with sessions() as s:
        row = s.get(computations.Computation, row_id)
        assert row.error is None, row.error
        return seconds, row.result["replayed_from"]


def keep_seconds(spec: dict, settings: Settings, repeats: int = 50) -> float:
    """What keeping one checkpoint costs the worker, timed alone (whole runs differ by more than it on a shared machine):
    the trainer's state, its .npz and the row, committed, as the training loop's flush writes it."""
    from engine.training import Trainer

    trainer = Trainer(spec)
    trainer.step_all()
    sessions = session_factory(settings.database_url)
    sizes = plan(parse_spec(spec))
    with sessions.begin() as s:  # a job of its own: the trained one's kept steps stay its own
        job_id = jobs.create_job(s, spec, total_steps=sizes.total_steps, n_params=sizes.n_params, experiment="bench-replay",
                                 mirrored=False).id
    started = time.perf_counter()
    for _ in range(repeats):
        with sessions.begin() as s:
            checkpoints.keep(s, job_id, trainer.state_dict())
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    case = CASES["b"]
    X, y = case_data(case, np.random.default_rng(0))
    spec = engine_spec(case, X, y, "float64", every=100, gradients="summary", steps=args.steps)
    spec = {**spec, "diagnose": False}
    none_kept = {**spec, "record": {**spec["record"], "checkpoints": 0}}
    tmp = tempfile.mkdtemp(prefix="bplab-bench-replay-")
    settings = Settings(database_url=f"sqlite:///{tmp}/replay.db", mlflow_tracking_uri="", flush_seconds=0.5)
    upgrade(settings.database_url)
    every = build_problem(spec).kept_every
    print(f"case (b) 2-16-16-1, batch {case['batch']}, {args.steps:,} steps, recording every 100th step; default cadence: a "
          f"checkpoint every {every:,} steps and after the last; the least disturbed of {args.repeats} alternating runs\n", flush=True)
    with_kept, without = [], []
    job_id = None
    for _ in range(args.repeats):
        job_id, seconds = trained(spec, settings)
        with_kept.append(seconds)
        without.append(trained(none_kept, settings)[1])
    kept_s, none_s = min(with_kept), min(without)  # the least disturbed run of each (this machine is shared)
    with session_factory(settings.database_url)() as s:
        kept = checkpoints.kept_steps(s, [job_id])[job_id]
    print(f"training with {len(kept)} kept checkpoints: {kept_s:.2f} s (runs {', '.join(f'{v:.2f}' for v in with_kept)}); keeping "
          f"none: {none_s:.2f} s (runs {', '.join(f'{v:.2f}' for v in without)}): {kept_s / none_s:.3f}×", flush=True)
    per_keep = keep_seconds(spec, settings)
    ratio = (none_s + len(kept) * per_keep) / none_s
    print(f"what keeping adds, timed alone: {per_keep * 1e3:.2f} ms per checkpoint (the state, its .npz, the row) × {len(kept)} = "
          f"{ratio:.4f}× the training (target ≤ 1.05×: {'met' if ratio <= 1.05 else 'not met'})", flush=True)
    worst = 0.0
    for step in (args.steps // 10, args.steps // 2 + 1234, args.steps - 1, every - 1):
        seconds, start = replayed(job_id, step, settings)
        worst = max(worst, seconds)
        print(f"replaying step {step:,} (from the checkpoint at step {start:,}, {step - start:,} steps): {seconds:.2f} s "
              f"(target ≤ 1 s: {'met' if seconds <= 1 else 'not met'})", flush=True)
    started = time.perf_counter()
    record_at(build_problem(spec), args.steps - 1)
    print(f"for comparison, step {args.steps - 1:,} replayed from step 0 (no kept checkpoint): {time.perf_counter() - started:.2f} s")
    print(f"\nworst replay {worst:.2f} s (target ≤ 1 s: {'met' if worst <= 1 else 'not met'}); cadence cost {ratio:.4f}× "
          f"(target ≤ 1.05×: {'met' if ratio <= 1.05 else 'not met'})")


if __name__ == "__main__":
    main()
