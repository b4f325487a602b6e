"""A job's loss landscape at any step: the weights after k steps found again by replaying the spec
(engine/replay.py: training is deterministic, so the replay is bit for bit the run), the loss on a grid over a plane
through them, and the path the weights took projected onto that plane (Li et al., NeurIPS 2018).

The plane is spanned by the Hessian's two sharpest directions at step k (`top`: unit eigenvectors,
by Lanczos on exact Hessian-vector products) or by two filter-normalised Gaussian directions
(`random`, Li et al.'s). Both are oriented so that the run's start lies at negative coordinates.
The loss is the training loss on the training set (strided to at most LANDSCAPE_MAX_SAMPLES rows),
in float64, without dropout. Nothing here touches the job's own random streams.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from . import curvature
from .problem import CURVATURE_MAX_SAMPLES, Problem
from .replay import Chain, weights_at

Directions = Literal["top", "random"]
LANDSCAPE_STREAM = 0x1A4D  # the random directions' and Lanczos' own generator
LANDSCAPE_MAX_SAMPLES = CURVATURE_MAX_SAMPLES
LANDSCAPE_MAX_WORK = 2e11  # grid points × samples × parameters: a landscape costs at most ~a minute of one core
MAX_PATH_POINTS = 200  # recorded steps drawn on the plane at most (evenly chosen among them)
PATH_MAX_FLOATS = 2 ** 24  # the path's weights held at once (128 MiB): fewer points for big networks


def path_steps(every: int, last: int, step: int, limit: int) -> list[int]:
    """The steps the path goes through: the recorded ones (every `every`-th, and the last), at most
    `limit` of them chosen evenly, always with the first, the last and `step` itself."""
    recorded = sorted(set(range(0, last, every)) | {last})
    if len(recorded) > limit:
        recorded = [recorded[i] for i in np.unique(np.linspace(0, len(recorded) - 1, limit).round().astype(int))]
    return sorted(set(recorded) | {step})


def _orient(direction: np.ndarray, toward_start: np.ndarray) -> np.ndarray:
    return -direction if float(direction @ toward_start) > 0 else direction


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def landscape_of(run: Problem | Chain, step: int, directions: Directions = "top", points: int = 41, span: float | None = None,
                 last: int | None = None) -> dict[str, Any]:
    """The loss around the weights at `step` on a `points` × `points` grid, with the path of the recorded
    steps up to `last` (default: the run's end) projected onto the plane; JSON-able (non-finite losses
    as None). `span` is the grid's half-width in the directions' units; by default it covers the path
    with a margin (and at least 1 for filter-normalised directions, a tenth of ‖θ‖ for unit ones)."""
    problem = run if isinstance(run, Problem) else run[-1][0]  # a fork's own (its lineage replays its early steps)
    if not 2 <= points <= curvature.LANDSCAPE_MAX_POINTS:
        raise ValueError(f"points: a landscape's side is 2 to {curvature.LANDSCAPE_MAX_POINTS} points")
    net = problem.network
    P, n = problem.n_params, problem.X_train.shape[0]
    stride = math.ceil(n / LANDSCAPE_MAX_SAMPLES)
    X, Y = problem.X_train[::stride].astype(np.float64), problem.Y_train[::stride].astype(np.float64)
    work = points * points * X.shape[0] * P
    if work > LANDSCAPE_MAX_WORK:
        raise ValueError(f"points: {points}² points × {X.shape[0]:,} samples × {P:,} parameters is {work:.2g} multiply-adds, over the "
                         f"{LANDSCAPE_MAX_WORK:.0g} a landscape may cost; ask for fewer points")
    last = problem.total_steps if last is None else last
    if not 0 <= step <= last:
        raise ValueError(f"step: the run's steps are 0 to {last}")
    through = path_steps(problem.spec.record.every, last, step, max(2, min(MAX_PATH_POINTS, PATH_MAX_FLOATS // P)))
    weights = weights_at(run, through)
    theta, start = weights[step], weights[through[0]]
    surface = curvature.Curvature(list(net.shapes), list(net.activations), problem.loss, X, Y)
    rng = np.random.default_rng([problem.spec.seed, step, LANDSCAPE_STREAM])
    eigenvalues = None
    if directions == "top":
        found: list[np.ndarray] = []
        values, _, _ = curvature.top_eigenvalues(surface.at(theta).product, P, rng, k=2, tol=1e-6, vectors=found)
        d1 = found[0]
        if len(found) > 1:
            d2 = found[1]
        else:  # the Hessian has one direction of curvature on this batch: any other, orthogonal to it
            d2 = rng.standard_normal(P)
            d2 -= (d2 @ d1) * d1
            d2 /= np.linalg.norm(d2)
        eigenvalues = [float(v) for v in values]
        base = max(0.1 * float(np.linalg.norm(theta)), 1e-2)
    else:
        d1, d2 = curvature.filter_normalised(list(net.shapes), theta, rng), curvature.filter_normalised(list(net.shapes), theta, rng)
        base = 1.0
    d1, d2 = _orient(d1, start - theta), _orient(d2, start - theta)
    coords = curvature.project([weights[s] for s in through], theta, d1, d2)
    reach = float(np.abs(coords).max()) if coords.size else 0.0
    span = float(span) if span is not None else max(base, 1.15 * reach)
    with np.errstate(all="ignore"):
        axis, losses = curvature.landscape(surface, theta, d1, d2, span=span, points=points)
        path = []
        for s, (a, b) in zip(through, coords.tolist(), strict=True):
            off = float(np.linalg.norm(weights[s] - theta - a * d1 - b * d2))
            path.append({"step": s, "alpha": a, "beta": b, "loss": _finite(surface.loss_value(weights[s])), "off_plane": off})
        at_step = surface.loss_value(theta)
    return {"step": step, "directions": directions, "points": points, "span": span, "samples": int(X.shape[0]), "n_params": P,
            "alpha": axis.tolist(), "beta": axis.tolist(),
            "loss": [[_finite(v) for v in row] for row in losses.tolist()], "loss_at_step": _finite(at_step),
            "eigenvalues": eigenvalues, "weight_norm": float(np.linalg.norm(theta)), "path": path}
