"""PNG plots of a job for its MLflow run: loss curves, gradient norms, dead units, decision boundary.

Long series are downsampled first (each bucket keeps its first, min, max and last point, so spikes
stay), and legends are drawn only while they stay readable."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from services.store.metrics import downsample

Series = dict[str, tuple[np.ndarray, np.ndarray]]
MAX_PLOTTED_POINTS = 2000
MAX_LEGEND_ENTRIES = 12


def _points(series: Series, key: str) -> tuple[np.ndarray, np.ndarray]:
    return downsample(*series[key], MAX_PLOTTED_POINTS)


def loss_curves(series: Series, path: Path) -> bool:
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for key, style in (("loss", {"alpha": 0.5, "lw": 0.8}), ("train_loss", {"marker": "o", "ms": 3}), ("val_loss", {"marker": "s", "ms": 3})):
        if key in series and series[key][0].size:
            ax.plot(*_points(series, key), label=key, **style)
            drawn = True
    ax.set(xlabel="step", ylabel="loss", title="Loss")
    return _save(fig, ax, path, drawn)


def gradient_norms(series: Series, path: Path) -> bool:
    fig, ax = plt.subplots(figsize=(7, 4))
    keys = sorted(k for k in series if k.startswith("grad_norm/") and k.endswith(".weight"))
    for key in keys:
        steps, values = _points(series, key)
        positive = values > 0
        ax.plot(steps[positive], values[positive], label=key.split("/", 1)[1])
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="‖∂L/∂W‖", title="Gradient norm per layer (log scale)")
    return _save(fig, ax, path, bool(keys))


def dead_units(series: Series, path: Path) -> bool:
    fig, ax = plt.subplots(figsize=(7, 4))
    keys = sorted(k for k in series if k.startswith("dead_fraction/"))
    for key in keys:
        ax.plot(*_points(series, key), label=key.split("/", 1)[1])
    ax.set(xlabel="step", ylabel="fraction of units", title="Dead ReLU units (z ≤ 0 on the whole batch)", ylim=(-0.02, 1.02))
    return _save(fig, ax, path, bool(keys))


def decision_boundary(predict, X: np.ndarray, labels: np.ndarray, path: Path) -> bool:
    """For 2-D inputs: the network's decision over a grid, with the training data on top."""
    if X.shape[1] != 2:
        return False
    pad = 0.5
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, 200)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, 200)
    gx, gy = np.meshgrid(xs, ys)
    classes = predict(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(gx, gy, classes, alpha=0.3, cmap="coolwarm")
    ax.scatter(X[:, 0], X[:, 1], c=labels, cmap="coolwarm", edgecolors="k", s=18)
    ax.set(title="Decision boundary", xlabel="x₁", ylabel="x₂")
    return _save(fig, ax, path, True, legend=False)


def _save(fig, ax, path: Path, drawn: bool, legend: bool = True) -> bool:
    if drawn:
        if legend and len(ax.get_lines()) <= MAX_LEGEND_ENTRIES:
            ax.legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn
