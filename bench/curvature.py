"""The cost of curvature: one Hessian-vector product (the R-operator) against one training step and
against PyTorch's `torch.autograd.functional.hvp` on the same weights and batch, and the cost of the
figures a `record.curvature` step reports (λmax by Lanczos at the default tolerance, the trace by
Hutchinson's 10 probes; the dense Hessian up to 300 parameters) counted in training steps, on cases
(b) 2-16-16-1 and (c) 784-256-256-10 of bench/engine_vs_torch.py, float64.

    .venv/bin/python bench/curvature.py [--repeats 5]

Then a landscape of 41 × 41 points for (b) on its whole training set along its two sharpest directions,
and the whole landscape a worker computes for GET /jobs/{id}/landscape (engine/landscapes.py): a
2,000-step job of (b) recording every 10th step replayed to step 1,000, its two sharpest directions
there, the 41 × 41 grid and the path of its 200 recorded steps.

Targets (the curvature issue): `sharpness` of one step for (b) ≤ 20 training steps' worth; the
41 × 41 landscape for (b) ≤ 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_vs_torch import CASES, case_data, engine_spec, time_engine

from engine import curvature
from engine.landscapes import landscape_of
from engine.problem import build_problem


def timed(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def torch_loss(layers: list[dict], shapes: list[tuple[int, ...]], X: np.ndarray, Y: np.ndarray):
    """The same loss in PyTorch, as a function of the flat parameters."""
    import torch

    Xt, Yt = torch.tensor(X), torch.tensor(Y)

    def loss(t: torch.Tensor) -> torch.Tensor:
        A, at = Xt, 0
        for i in range(len(layers)):
            W = t[at:at + int(np.prod(shapes[2 * i]))].reshape(shapes[2 * i])
            at += W.numel()
            b = t[at:at + shapes[2 * i + 1][0]]
            at += b.numel()
            Z = A @ W.T + b
            A = torch.relu(Z) if i < len(layers) - 1 else Z
        if Yt.shape[1] > 1:
            return torch.nn.functional.cross_entropy(Z, Yt)
        return torch.nn.functional.binary_cross_entropy_with_logits(Z, Yt)

    return loss


def measure(name: str, repeats: int) -> None:
    import torch

    case = CASES[name]
    X, y = case_data(case, np.random.default_rng(0))
    spec = engine_spec(case, X, y, "float64", every=10**9, gradients="none", steps=200)
    step_us = time_engine(spec, 200)
    problem = build_problem(spec)
    net, n = problem.network, problem.batch_size
    surface = curvature.Curvature(list(net.shapes), list(net.activations), problem.loss, problem.X_train[:n], problem.Y_train[:n])
    theta = net.flat_params[0].copy()
    v = np.random.default_rng(1).standard_normal(theta.size)
    ours = timed(lambda: surface.hvp(theta, v), repeats)
    loss = torch_loss(spec["model"]["layers"], surface.shapes, surface.X, surface.Y)
    theirs = timed(lambda: torch.autograd.functional.hvp(loss, torch.tensor(theta), torch.tensor(v)), repeats)
    rng = np.random.default_rng(2)
    figures_us = timed(lambda: curvature.figures(surface, theta, 0.01, rng), max(1, repeats // 2))
    used = []
    sharpness_us = timed(lambda: used.append(curvature.top_eigenvalues(surface.at(theta).product, theta.size, rng, tol=1e-4)[1]),
                         max(1, repeats // 2))
    print(f"case ({name}) {'-'.join(map(str, case['sizes']))}, batch {case['batch']}, {theta.size:,} parameters: training step "
          f"{step_us:,.0f} µs; one Hessian-vector product {ours:,.0f} µs ({ours / step_us:.1f} steps; torch's hvp {theirs:,.0f} µs, "
          f"ours {ours / theirs:.2f}× its time); sharpness by Lanczos (tolerance 1e-4, {used[-1]} products) {sharpness_us / 1e3:,.1f} ms = "
          f"{sharpness_us / step_us:,.0f} training steps" + (" (target ≤ 20)" if name == "b" else "") + "; a curvature step's figures "
          f"(with the trace{', dense' if theta.size <= curvature.DENSE_MAX_PARAMS else ''}) {figures_us / 1e3:,.1f} ms = "
          f"{figures_us / step_us:,.0f} training steps", flush=True)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in ("b", "c"):
        measure(name, args.repeats)
    case = CASES["b"]
    X, y = case_data(case, np.random.default_rng(0))
    problem = build_problem(engine_spec(case, X, y, "float64", every=10**9, gradients="none", steps=200))
    net = problem.network
    surface = curvature.Curvature(list(net.shapes), list(net.activations), problem.loss, problem.X_train, problem.Y_train)
    theta = net.flat_params[0].copy()
    t0 = time.perf_counter()
    d1, d2 = curvature.top_directions(surface, theta, np.random.default_rng(3))
    curvature.landscape(surface, theta, d1, d2, span=1.0, points=41)
    print(f"landscape of case (b), 41 × 41 points on its {len(X):,} samples along its two top eigenvectors: "
          f"{time.perf_counter() - t0:.2f} s (target ≤ 2 s)", flush=True)
    job = build_problem(engine_spec(case, X, y, "float64", every=10, gradients="none", steps=2000))
    t0 = time.perf_counter()
    answer = landscape_of(job, 1000, "top", points=41)
    print(f"a job's landscape as the worker computes it, case (b), 2,000 steps replayed to 1,000, top directions, 41 × 41, "
          f"{len(answer['path'])} path points: {time.perf_counter() - t0:.2f} s", flush=True)


if __name__ == "__main__":
    main()
