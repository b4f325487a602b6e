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
from engine.problem import Plan, Problem, build_problem, plan_document
from engine.spec import JobSpec
from services import charts
from services.run_params import LOG_SCALE, param_name, spec_params
from services.settings import Settings
from services.store import metrics, step_arrays
from services.store.models import Job

MAX_PARAM_VALUE = 6000
EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
RUN_NAME_LABELS = {"batch_size": "batch"}


_PARSED: dict[str, tuple[JobSpec, Plan]] = {}


def parsed(job: Job) -> tuple[JobSpec, Plan]:
    """The job's spec and sizes, parsed once per process (without the inline rows: validating
    megabytes of numbers again would stall the mirror for a second)."""
    key = job_key(job)
    if key not in _PARSED:
        _PARSED[key] = plan_document(job.spec)
    return _PARSED[key]


def run_params(job: Job, log_names: set[str] | frozenset[str] = frozenset(LOG_SCALE)) -> dict[str, str]:
    """One param per spec field under its short name (services/run_params.py), a few derived ones,
    and log10_<name> of the log-scale ones; as MLflow's strings."""
    params = {name: _text(value) for name, value in spec_params(job.spec, parsed(job)).items()}
    for name in sorted(log_names):
        try:
            value = float(params.get(name, "nan"))
        except ValueError:
            continue
        if value > 0 and math.isfinite(value):
            params[f"log10_{name}"] = f"{math.log10(value):.6g}"
    return {k: v[:MAX_PARAM_VALUE] for k, v in params.items()}


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, bool)) or value is None else str(value)


def run_name(job: Job) -> str:
    """What varies, as `lr=0.1 batch=1 seed=0`: a sweep's point and seed; for a single job its name,
    or its learning rate, batch size and seed."""
    spec, _ = parsed(job)
    if job.sweep_params is not None:
        shown = {param_name(path): value for path, value in job.sweep_params.items()}
    elif job.name:
        return job.name
    else:
        shown = {"lr": spec.optimizer.lr, "batch_size": spec.batch_size}
    shown["seed"] = spec.seed
    return " ".join(f"{RUN_NAME_LABELS.get(k, k)}={_short(v)}" for k, v in shown.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value)


def created_ms(job: Job) -> int:
    """The job's creation time in ms: the fixed timestamp of its points (a point sent twice is stored once)."""
    return int(job.created_at.timestamp() * 1000)


def job_key(job: Job) -> str:
    """Identifies the job's run even if another store (a reset database) reuses the job id."""
    return f"{job.id}-{created_ms(job)}"


def run_tags(job: Job, settings: Settings) -> dict[str, str]:
    tags = {k: v for k, v in ((t.key, t.value) for t in job.tags) if not k.startswith("mlflow.")}
    tags.update({"job_id": str(job.id), "job_key": job_key(job), "status": job.status.value, "mlflow.runName": run_name(job)})
    if job.name:
        tags["job_name"] = job.name
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
