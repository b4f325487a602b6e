"""What a job's MLflow run holds, computed from the store: params with stable names, tags, how
densely points are sent, and the artifacts (spec, model, plots, recorded gradients and traces)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from engine.inference import predict
from engine.problem import Plan, Problem, build_problem, plan
from engine.spec import JobSpec, parse_spec
from services import charts
from services.settings import Settings
from services.store import metrics, step_arrays
from services.store.models import Job

MAX_PARAM_VALUE = 6000
EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def architecture(spec: dict, n_inputs: int) -> str:
    """`2-2(relu)-1(sigmoid)`: input width, then units(activation) per layer."""
    return "-".join([str(n_inputs)] + [f"{layer['units']}({layer['activation']})" for layer in spec["model"]["layers"]])


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Spec fields as dotted names (`optimizer.lr`, `model.layers.0.units`); inline data and explicit
    weights are left out (they are in spec.json)."""
    if prefix in ("data.X", "data.y", "model.weights", "model.biases"):
        return {}
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and isinstance(value[0], dict):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{i}"))
        return out
    return {prefix: json.dumps(value) if isinstance(value, (list, bool)) or value is None else str(value)}


_PARSED: dict[str, tuple[JobSpec, Plan]] = {}


def parsed(job: Job) -> tuple[JobSpec, Plan]:
    """The job's spec and sizes, parsed once per process from a copy without the inline rows and
    explicit weights: validating megabytes of numbers again would stall the mirror for a second."""
    key = job_key(job)
    if key not in _PARSED:
        raw = job.spec
        light = dict(raw)
        n_samples = None
        if raw["data"].get("X") is not None:
            n_samples = len(raw["data"]["X"])
            light["data"] = {**raw["data"], "X": raw["data"]["X"][:1], "y": raw["data"]["y"][:1]}
        light["model"] = {k: v for k, v in raw["model"].items() if k not in ("weights", "biases")}
        spec = parse_spec(light)
        _PARSED[key] = (spec, plan(spec, n_samples))
    return _PARSED[key]


def run_params(job: Job) -> dict[str, str]:
    """Headline params with stable names (for the compare view), then every other spec field."""
    spec, sizes = parsed(job)
    data = job.spec["data"]
    dataset = data.get("builtin") or f"inline({sizes.n_samples}x{sizes.n_inputs})"
    params = flatten(spec.model_dump(mode="json", exclude_none=True))
    params.update({
        "lr": str(spec.optimizer.lr), "batch_size": str(spec.batch_size), "optimizer": spec.optimizer.name,
        "loss": spec.loss, "architecture": architecture(job.spec, sizes.n_inputs), "hidden_layers": str(len(spec.model.layers) - 1),
        "init": "explicit" if job.spec["model"].get("weights") is not None else spec.model.init, "seed": str(spec.seed), "dtype": spec.dtype,
        "dataset": dataset, "n_params": str(sizes.n_params),
    })
    params["epochs" if spec.steps is None else "steps"] = str(spec.epochs if spec.steps is None else spec.steps)
    return {k: v[:MAX_PARAM_VALUE] for k, v in params.items()}


def created_ms(job: Job) -> int:
    """The job's creation time in ms: the fixed timestamp of its points (a point sent twice is stored once)."""
    return int(job.created_at.timestamp() * 1000)


def job_key(job: Job) -> str:
    """Identifies the job's run even if another store (a reset database) reuses the job id."""
    return f"{job.id}-{created_ms(job)}"


def run_tags(job: Job, settings: Settings) -> dict[str, str]:
    tags = {k: v for k, v in ((t.key, t.value) for t in job.tags) if not k.startswith("mlflow.")}
    tags.update({"job_id": str(job.id), "job_key": job_key(job), "status": job.status.value, "mlflow.runName": job.name or f"job-{job.id}"})
    if job.sweep_id is not None:
        tags["sweep_id"] = str(job.sweep_id)
    if settings.public_url:
        tags["job_url"] = f"{settings.public_url.rstrip('/')}/api/v1/jobs/{job.id}"
    return tags


def strides(job: Job, max_points: int) -> tuple[int, int]:
    """Send every k-th point so a key never exceeds `max_points` in MLflow: (step keys, epoch keys)."""
    spec, sizes = parsed(job)
    every = spec.record.every
    step_points = sum(1 for _ in range(0, sizes.total_steps, every)) + (0 if (sizes.total_steps - 1) % every == 0 else 1)
    epoch_points = math.ceil(sizes.total_steps / sizes.steps_per_epoch)
    return max(1, math.ceil(step_points / max_points)), max(1, math.ceil(epoch_points / max_points))


def write_artifacts(session: Session, job: Job, folder: Path) -> None:
    """spec.json, model.npz (+ a predict example), PNG plots, recorded gradients and traces."""
    (folder / "spec.json").write_text(json.dumps(job.spec, indent=2))
    problem = build_problem(job.spec) if job.model else None
    if problem is not None:
        arrays = {f"weights_{i}": np.array(w) for i, w in enumerate(job.model["weights"])}
        arrays.update({f"biases_{i}": np.array(b) for i, b in enumerate(job.model["biases"])})
        for extra in ("input_mean", "input_std"):
            if extra in job.model:
                arrays[extra] = np.array(job.model[extra])
        np.savez(folder / "model.npz", **arrays)
        _predict_example(job, problem, folder)
    series = metrics.read(session, job.id)
    plot_dir = folder / "plots"
    plot_dir.mkdir()
    for name, svg in plots(series).items():
        (plot_dir / f"{name}.svg").write_text(svg)
    if problem is not None and problem.X_train.shape[1] == 2:
        (plot_dir / "decision_boundary.svg").write_text(_boundary(job, problem))
    for kind in step_arrays.KINDS:
        steps = step_arrays.steps(session, job.id, kind)
        if steps:
            (folder / kind).mkdir()
        for step in steps:
            data = step_arrays.read(session, job.id, kind, step)
            if kind == "gradients":
                np.savez(folder / kind / f"step_{step}.npz", **step_arrays.decode_gradients(data))
            else:
                (folder / kind / f"step_{step}.json").write_text(json.dumps(step_arrays.decode_trace(data)))


def _raw_inputs(problem: Problem) -> np.ndarray:
    """The training inputs as a user sends them (the API standardises them itself)."""
    X = problem.X_train
    return X * problem.input_std + problem.input_mean if problem.input_mean is not None else X


def _predict_example(job: Job, problem: Problem, folder: Path) -> None:
    rows = _raw_inputs(problem)[:3]
    example = {"request": {"X": rows.tolist()}, "response": predict(problem.spec, job.model, rows.tolist())}
    (folder / "predict_example.json").write_text(json.dumps(example, indent=2))


def plots(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, str]:
    """The run's charts (SVG) by name: loss curves, gradient norms per layer (log scale), dead units."""
    def having(prefix: str, suffix: str = "") -> dict:
        return {k.split("/", 1)[1]: v for k, v in sorted(series.items()) if k.startswith(prefix) and k.endswith(suffix)}

    drawn = {
        "loss": charts.line_chart({k: series[k] for k in ("loss", "train_loss", "val_loss") if k in series}, "Loss", y_label="loss"),
        "gradient_norms": charts.line_chart(having("grad_norm/", ".weight"), "Gradient norm per layer (log scale)",
                                            y_label="‖∂L/∂W‖", log_y=True),
        "dead_units": charts.line_chart(having("dead_fraction/"), "Dead ReLU units (z ≤ 0 on the whole batch)",
                                        y_label="fraction of units", y_range=(0.0, 1.0)),
    }
    return {name: svg for name, svg in drawn.items() if svg is not None}


def _boundary(job: Job, problem: Problem, cells: int = 80) -> str:
    """The decision over a grid around the (raw) training inputs, with them on top."""
    X = _raw_inputs(problem)
    pad = 0.5
    extent = (float(X[:, 0].min()) - pad, float(X[:, 0].max()) + pad, float(X[:, 1].min()) - pad, float(X[:, 1].max()) + pad)
    gx, gy = np.meshgrid(np.linspace(extent[0], extent[1], cells), np.linspace(extent[2], extent[3], cells))
    out = predict(problem.spec, job.model, np.column_stack([gx.ravel(), gy.ravel()]).tolist())
    classes = np.array(out.get("classes", out["outputs"]), dtype=float).reshape(cells * cells, -1)[:, 0].reshape(cells, cells)
    labels = problem.Y_train.argmax(axis=1) if problem.Y_train.shape[1] > 1 else problem.Y_train[:, 0]
    return charts.decision_map(classes, extent, X, labels)
