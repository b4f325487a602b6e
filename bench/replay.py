"""What a replay costs: the state of case (b) 2-16-16-1 of bench/engine_vs_torch.py after k steps, found again
by training it again from the start (engine/replay.py), as a fork's worker and a landscape's do, against the
job's own training time.

    .venv/bin/python bench/replay.py [--steps 100000]

Target (the replay issue): replaying any step of a 100,000-step job of (b) ≤ 1 s at the default checkpoint
cadence. No checkpoint is kept once a job has ended yet, so a replay starts from step 0: its cost is the
training up to the step (printed as such; the target is not met until kept checkpoints bound it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_vs_torch import CASES, case_data, engine_spec

from engine.problem import build_problem
from engine.replay import state_at
from engine.training import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    case = CASES["b"]
    X, y = case_data(case, np.random.default_rng(0))
    spec = engine_spec(case, X, y, "float64", every=100, gradients="summary", steps=args.steps)
    trainer = Trainer(spec)
    t0 = time.perf_counter()
    for _ in trainer:
        pass
    trained = time.perf_counter() - t0
    problem = build_problem(spec)
    for step in (args.steps // 10, args.steps // 2, args.steps - 1):
        t0 = time.perf_counter()
        state = state_at(problem, step)
        replayed = time.perf_counter() - t0
        print(f"case (b), {args.steps:,}-step job (trained in {trained:.2f} s, recording every 100th step): replaying step "
              f"{step:,} took {replayed:.2f} s ({replayed / trained:.2f}× its training; target ≤ 1 s: "
              f"{'met' if replayed <= 1 else 'not met, no kept checkpoints yet'})", flush=True)
    assert state["step"] == args.steps - 1


if __name__ == "__main__":
    main()
