"""A job's charts as SVG, from the store's points and its model: the MLflow run's artifacts and the
job page draw the same ones (svg.py draws them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.inference import predict
from engine.problem import Problem

from . import svg as charts

Series = charts.Series

# name -> (title, which keys, y label, log y, y range): each a line per key, keys chosen by prefix and suffix
CHARTS: dict[str, tuple[str, tuple[str, str], str, bool, tuple[float, float] | None]] = {
    "loss": ("Loss", ("", ""), "loss", False, None),
    "gradient_norms": ("Gradient norm per layer (log scale)", ("grad_norm/", ".weight"), "‖∂L/∂W‖", True, None),
    "update_ratios": ("Update ratio per layer (log scale)", ("update_ratio/", ".weight"), "‖ΔW‖ / ‖W‖", True, None),
    "dead_units": ("Dead ReLU units (z ≤ 0 on the whole batch)", ("dead_fraction/", ""), "fraction of units", False, (0.0, 1.0)),
    "vanishing_ratio": ("Vanishing ratio (first layer's gradient norm over the last's, log scale)", ("vanishing_ratio", ""), "ratio",
                        True, None),
    "sharpness": ("Sharpness × learning rate (above 2, descent overshoots)", ("sharpness_x_lr", ""), "λmax · η", False, None),
}
REFERENCE_LINES = {"sharpness": 2.0}  # drawn dashed across the chart
LOSS_KEYS = ("loss", "train_loss", "val_loss")
EPOCH_KEYS = ("train_loss", "val_loss")  # one point an epoch: drawn on top of the step series, never smoothed


def keys_of(name: str, known: list[str]) -> list[str]:
    """The metric keys chart `name` draws, of those a job recorded."""
    if name == "loss":
        return [k for k in LOSS_KEYS if k in known]
    _, (prefix, suffix), *_ = CHARTS[name]
    return sorted(k for k in known if k.startswith(prefix) and k.endswith(suffix))


def chart(name: str, series: Series, smoothing: float = 0.0, log_y: bool | None = None,
          max_points: int = charts.MAX_POINTS, marks: list[tuple[int, str, str]] = ()) -> str | None:
    """One chart of CHARTS from `{key: (steps, values)}` (only its keys are drawn); None if it has no points.

    `smoothing` smooths the step series (the raw ones stay, faint); `log_y` overrides the chart's own axis;
    `marks` are the job's diagnoses (step, text, severity), each a line where it began."""
    title, _, y_label, default_log, y_range = CHARTS[name]
    log_y = default_log if log_y is None else log_y
    if log_y and name == "loss":
        title = "Loss (log scale)"
    keys = keys_of(name, list(series))
    # lines named by tensor or layer (`dense_1.weight`), the loss chart's by key
    lines = {key if name in ("loss", "vanishing_ratio", "sharpness") else key.split("/", 1)[1]: series[key] for key in keys}
    smoothing = 0.0 if name in REFERENCE_LINES else smoothing  # a few curvature steps: drawn as measured
    return charts.line_chart(lines, title, y_label=y_label, log_y=log_y, y_range=None if log_y else y_range, smoothing=smoothing,
                             on_top=EPOCH_KEYS if name == "loss" else (), max_points=max_points, marks=marks,
                             reference=REFERENCE_LINES.get(name))


def plots(series: Series) -> dict[str, str]:
    """Every chart that has points, by name."""
    drawn = {name: chart(name, series) for name in CHARTS}
    return {name: svg for name, svg in drawn.items() if svg is not None}


def raw_inputs(problem: Problem) -> np.ndarray:
    """The training inputs as a user sends them (the API standardises them itself)."""
    X = problem.X_train
    return X * problem.input_std + problem.input_mean if problem.input_mean is not None else X


def decision_boundary(problem: Problem, model: dict[str, Any], title: str = "Decision boundary", cells: int = 80) -> str:
    """The decision of `model` (weights and biases, as a job's model or a traced step's) over a grid
    around the (raw) training inputs of a 2-D problem, with them on top."""
    X = raw_inputs(problem)
    pad = 0.5
    extent = (float(X[:, 0].min()) - pad, float(X[:, 0].max()) + pad, float(X[:, 1].min()) - pad, float(X[:, 1].max()) + pad)
    gx, gy = np.meshgrid(np.linspace(extent[0], extent[1], cells), np.linspace(extent[2], extent[3], cells))
    full = {**model, **{k: problem_value for k, problem_value in _standardisation(problem).items() if k not in model}}
    out = predict(problem.spec, full, np.column_stack([gx.ravel(), gy.ravel()]).tolist())
    classes = np.array(out.get("classes", out["outputs"]), dtype=float).reshape(cells * cells, -1)[:, 0].reshape(cells, cells)
    labels = problem.Y_train.argmax(axis=1) if problem.Y_train.shape[1] > 1 else problem.Y_train[:, 0]
    return charts.decision_map(classes, extent, X, labels, title=title)


def _standardisation(problem: Problem) -> dict[str, list[float]]:
    if problem.input_mean is None:
        return {}
    return {"input_mean": problem.input_mean.tolist(), "input_std": problem.input_std.tolist()}
