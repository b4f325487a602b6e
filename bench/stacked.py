"""Stacked sweeps against one job at a time, in one run.

Engine: one step of a trainer of K = 1, 10, 100 members (each its own seed and learning rate) against K
steps of the same members each trained alone (a trainer of one), for cases (a) 2-2-1 on the post's five samples and (b) 2-16-16-1
batch 32 of bench/engine_vs_torch.py (target for (b): ≥ 20× at K = 100), and (c) 784-256-256-10 batch
128, where the matrices are big enough for BLAS alone and stacking stops paying. Recording off, as in
engine_vs_torch.py; median of five timed blocks after a warm-up.

Service: a 100-point sweep (η log-uniform × 5 seeds, 2-16-16-1 on moons, 500 steps, every 10th step
recorded) on one `make up` stack, stacked and then with `"stack": false`, from POST to finished
(target ≥ 5× faster stacked, and ≤ 10× the wall time of a single job of the sweep, also measured).

    env -u OPENBLAS_CORETYPE .venv/bin/python bench/stacked.py [--quick] [--skip-service] [--dtype float64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_vs_torch import CASES, case_data, engine_spec
from engine.training import Trainer


def member_specs(case: dict, k: int, dtype: str, steps: int) -> list[dict]:
    X, y = case_data(case, np.random.default_rng(0))
    base = engine_spec(case, X, y, dtype, every=10**9, gradients="none", steps=steps)
    rng = np.random.default_rng(1)
    return [{**base, "seed": i, "optimizer": {"name": "sgd", "lr": float(10 ** rng.uniform(-3, -1))}} for i in range(k)]


def median_block(step, steps: int) -> float:
    """Median seconds per call of `step` over five blocks, after a warm-up."""
    for _ in range(3):
        step()
    per_block, blocks = max(1, steps // 5), []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per_block):
            step()
        blocks.append((time.perf_counter() - t0) / per_block)
    return statistics.median(blocks)


def engine_figures(case_name: str, ks: list[int], dtype: str, budget: float) -> None:
    case = CASES[case_name]
    for k in ks:
        # enough steps for the timing, within a time budget per figure
        probe = Trainer(member_specs(case, 1, dtype, 10**6)[0])
        t_one = median_block(probe.train_step, 10)
        steps = int(max(10, min(2000, budget / max(t_one * k, 1e-6))))
        specs = member_specs(case, k, dtype, steps * 2 + 10)
        solo = [Trainer(spec) for spec in specs]
        t_solo = median_block(lambda solo=solo: [t.train_step() for t in solo], steps)
        stack = Trainer.stack([Trainer(spec) for spec in specs])
        t_stack = median_block(stack.step_all, steps)
        print(f"  ({case_name}) K={k:>3}: {k} solo steps {t_solo * 1e6:>10,.0f} µs, one stacked step {t_stack * 1e6:>9,.0f} µs: "
              f"{t_solo / t_stack:6.1f}×  ({t_stack / k * 1e6:,.1f} µs per member-step)", flush=True)


# -- the service --------------------------------------------------------------------------------------

SWEEP = {"experiment": "bench-stacked",
         "base": {"model": {"layers": [{"units": 16, "activation": "relu"}, {"units": 16, "activation": "relu"},
                                       {"units": 1, "activation": "sigmoid"}]},
                  "loss": "bce", "data": {"builtin": "moons", "n_samples": 1000, "validation_split": 0.2},
                  "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 32, "steps": 500, "record": {"every": 10}},
         "strategy": "random", "trials": 20, "space": {"optimizer.lr": {"log_uniform": [0.001, 1.0]}}, "seeds": 5,
         "objective": {"metric": "val_loss", "goal": "minimize"}, "max_parallel": 100}


def run_sweep(client, stack: bool) -> tuple[float, dict]:
    body = {**SWEEP, "name": f"stack-{stack}", "experiment": f"bench-stacked-{uuid.uuid4().hex[:6]}", "stack": stack}
    t0 = time.monotonic()
    sweep = client.post("/api/v1/sweeps", json=body).json()
    while (state := client.get(f"/api/v1/sweeps/{sweep['id']}").json())["status"] == "running":
        time.sleep(0.05)
    return time.monotonic() - t0, state["progress"]["by_state"]


def single_job(client) -> float:
    spec = {**SWEEP["base"], "experiment": "bench-stacked-single"}
    t0 = time.monotonic()
    job = client.post("/api/v1/jobs", json=spec).json()
    while client.get(f"/api/v1/jobs/{job['id']}").json()["status"] in ("queued", "running"):
        time.sleep(0.02)
    return time.monotonic() - t0


def service_figures() -> None:
    import httpx

    from tests.support.services import MakeUp

    var = Path(tempfile.mkdtemp(prefix="bplab-bench-stacked-"))
    up = MakeUp(var, SUBMIT_RATE_LIMIT="1000000/minute").start()
    try:
        time.sleep(5)
        with httpx.Client(base_url=up.url, timeout=120) as client:
            one = statistics.median(single_job(client) for _ in range(3))
            stacked, by_state_stacked = run_sweep(client, True)
            alone, by_state_alone = run_sweep(client, False)
        print(f"  one job of the sweep (2-16-16-1, moons 1,000, 500 steps, every 10th recorded), submit to succeeded: {one:.2f} s")
        print(f"  100-point sweep stacked: {stacked:.1f} s ({by_state_stacked}); one job at a time: {alone:.1f} s ({by_state_alone})")
        print(f"  stacked is {alone / stacked:.1f}× faster (target ≥ 5×) and {stacked / one:.1f}× one job's wall time (target ≤ 10×)",
              flush=True)
    finally:
        up.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--dtype", default="float64,float32")
    args = parser.parse_args()
    budget = 0.3 if args.quick else 1.0
    for dtype in args.dtype.split(","):
        print(f"engine, {dtype} (recording off):", flush=True)
        engine_figures("a", [1, 10, 100], dtype, budget)
        engine_figures("b", [1, 10, 100], dtype, budget)
        engine_figures("c", [1, 10] if args.quick else [1, 10, 100], dtype, budget)
    if not args.skip_service:
        print("service (make up, SQLite, embedded Redis, MLflow on):", flush=True)
        service_figures()


if __name__ == "__main__":
    main()
