"""One training step (forward, backward, update) of the engine and of PyTorch CPU, side by side.

Cases: (a) 2-2-1 on the post's five samples, batch 5; (b) 2-16-16-1, 1,000 samples, batch 32;
(c) 784-256-256-10 softmax, batch 128; (d) 784-1024-1024-10, batch 512. For float32 and float64
it prints µs/step, the ratio engine/PyTorch, the cost of recording every step with gradient
summaries, and for (c) and (d) the fraction of this run's NumPy matmul peak the step reaches.

    make bench        # or: .venv/bin/python bench/engine_vs_torch.py [--quick] [--cases abcd]

Some machines here pin OpenBLAS to an older kernel (OPENBLAS_CORETYPE=Haswell), which slows NumPy's
matmul by ~1.7x but not PyTorch's; `make bench` unsets it for the run (tests keep it). Each figure
is the median of five timed blocks after a warm-up; the engine runs with recording off
(`record.every` past the end, `gradients: none`) unless the column says otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.training import Trainer

CASES = {
    "a": dict(sizes=[2, 2, 1], n=5, batch=5, hidden="relu"),
    "b": dict(sizes=[2, 16, 16, 1], n=1000, batch=32, hidden="relu"),
    "c": dict(sizes=[784, 256, 256, 10], n=128 * 4, batch=128, hidden="relu"),
    "d": dict(sizes=[784, 1024, 1024, 10], n=512 * 2, batch=512, hidden="relu"),
}


def case_data(case: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if case["n"] == 5:
        from engine.datasets import SEED_X, SEED_Y

        return np.array(SEED_X), np.array(SEED_Y)
    X = rng.normal(size=(case["n"], case["sizes"][0]))
    classes = case["sizes"][-1]
    y = rng.integers(0, max(classes, 2), size=case["n"])
    return X, y


def engine_spec(case: dict, X: np.ndarray, y: np.ndarray, dtype: str, every: int, gradients: str, steps: int) -> dict:
    out = case["sizes"][-1]
    layers = [{"units": u, "activation": case["hidden"]} for u in case["sizes"][1:-1]]
    layers.append({"units": out, "activation": "sigmoid" if out == 1 else "softmax"})
    return {
        "model": {"layers": layers, "init": "he_normal"},
        "loss": "bce" if out == 1 else "cross_entropy",
        "data": {"X": X.tolist(), "y": y.tolist()},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "batch_size": case["batch"], "steps": steps, "shuffle": False, "dtype": dtype,
        "record": {"every": every, "gradients": gradients},
    }


def time_engine(spec: dict, steps: int) -> float:
    """Median µs per step over a few timed blocks (after a warm-up)."""
    trainer = Trainer(spec)
    for _ in range(min(5, steps)):
        trainer.train_step()
    blocks = []
    per_block = max(1, (steps - 5) // 5)
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per_block):
            trainer.train_step()
        blocks.append((time.perf_counter() - t0) / per_block)
    return float(np.median(blocks)) * 1e6


def time_torch(case: dict, X: np.ndarray, y: np.ndarray, dtype: str, steps: int) -> float:
    import torch

    torch.manual_seed(0)
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    mods: list = []
    sizes = case["sizes"]
    for i in range(len(sizes) - 1):
        mods.append(torch.nn.Linear(sizes[i], sizes[i + 1], dtype=tdtype))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    Xt = torch.tensor(X, dtype=tdtype)
    if sizes[-1] == 1:
        loss_fn, yt = torch.nn.BCEWithLogitsLoss(), torch.tensor(y, dtype=tdtype).reshape(-1, 1)
    else:
        loss_fn, yt = torch.nn.CrossEntropyLoss(), torch.tensor(y)
    bs, n = case["batch"], X.shape[0]
    batches = [(Xt[i:i + bs], yt[i:i + bs]) for i in range(0, n, bs)]

    def step(k: int) -> None:
        xb, yb = batches[k % len(batches)]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()

    for k in range(min(5, steps)):
        step(k)
    blocks = []
    per_block = max(1, (steps - 5) // 5)
    for _ in range(5):
        t0 = time.perf_counter()
        for k in range(per_block):
            step(k)
        blocks.append((time.perf_counter() - t0) / per_block)
    return float(np.median(blocks)) * 1e6


def matmul_peak(dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of NumPy's own (size x size) @ (size x size), best of a few."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(size, size)).astype(dtype)
    B = rng.normal(size=(size, size)).astype(dtype)
    out = np.empty_like(A)
    np.matmul(A, B, out=out)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(A, B, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def step_flops(case: dict) -> float:
    """Multiply-adds x 2 of forward (A W.T), dW (delta.T A) and dA (delta W) for every layer but dA of the first."""
    sizes, n = case["sizes"], case["batch"]
    macs = sum(sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1))
    first = sizes[0] * sizes[1]
    return 2 * n * (3 * macs - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, noisier figures)")
    parser.add_argument("--cases", default="abcd")
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_info

    torch.set_num_threads(os.cpu_count() or 1)
    blas = next((info for info in threadpool_info() if info.get("user_api") == "blas"), {})
    print(f"numpy {np.__version__} ({blas.get('internal_api')} {blas.get('architecture')}, {blas.get('num_threads')} threads), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}")
    peaks = {dt: matmul_peak(dt) for dt in ("float32", "float64")}
    print(f"NumPy matmul peak (2048², this run): float32 {peaks['float32']:.0f} GFLOP/s, float64 {peaks['float64']:.0f} GFLOP/s\n")
    header = f"{'case':<22}{'dtype':<9}{'engine µs':>11}{'torch µs':>11}{'ratio':>8}{'rec every:1 µs':>16}{'rec cost':>10}{'% peak':>8}"
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for key in args.cases:
        case = CASES[key]
        X, y = case_data(case, rng)
        steps = {"a": 3000, "b": 3000, "c": 300, "d": 40}[key]
        if args.quick:
            steps = max(10, steps // 10)
        for dtype in ("float32", "float64"):
            plain = time_engine(engine_spec(case, X, y, dtype, every=10**9, gradients="none", steps=steps + 10), steps)
            recorded = time_engine(engine_spec(case, X, y, dtype, every=1, gradients="summary", steps=steps + 10), steps)
            torch_us = time_torch(case, X, y, dtype, steps)
            name = f"({key}) {'-'.join(map(str, case['sizes']))} b{case['batch']}"
            peak = ""
            if key in "cd":
                peak = f"{100 * step_flops(case) / (plain * 1e-6) / 1e9 / peaks[dtype]:.0f}%"
            print(f"{name:<22}{dtype:<9}{plain:>11.1f}{torch_us:>11.1f}{plain / torch_us:>8.2f}{recorded:>16.1f}"
                  f"{recorded / plain:>9.2f}×{peak:>8}", flush=True)


if __name__ == "__main__":
    main()
