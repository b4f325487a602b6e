"""What a job's MLflow run holds, computed from the store: params with stable names, tags and the
artifacts (spec, model, plots, recorded gradients and traces)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from engine.export import npz_bytes
from engine.inference import predict
from engine.problem import Plan, plan_document
from engine.spec import JobSpec
from services.charts.job import decision_boundary, plots, raw_inputs
from services.datasets.use import DatasetGone, problem_for
from services.mlflow.run_params import LOG_SCALE, param_name, spec_params
from services.settings import Settings
from services.store import metrics, step_arrays
from services.store.models import Job

MAX_PARAM_VALUE = 6000
RUN_NAME_LABELS = {"batch_size": "batch"}


_PARSED: dict[str, tuple[JobSpec, Plan]] = {}


MAX_TAG_VALUE = 5000  # MLflow's limit on a tag's value


def parsed(job: Job) -> tuple[JobSpec, Plan]:
    """The job's spec and sizes, parsed once per process (without the inline rows: validating
    megabytes of numbers again would stall the mirror for a second)."""
    key = job_key(job)
    if key not in _PARSED:
        _PARSED[key] = plan_document(job.spec)
    return _PARSED[key]


def run_params(job: Job, log_names: set[str] | frozenset[str] = frozenset(LOG_SCALE)) -> dict[str, str]:
    """One param per spec field under its short name (services/mlflow/run_params.py), a few derived ones,
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
    if job.forked_from_job is not None:  # a fork: its run holds its own steps, from forked_from_step on
        tags.update({"forked_from_job": str(job.forked_from_job), "forked_from_step": str(job.forked_from_step)})
    if settings.public_url:
        tags["job_url"] = f"{settings.public_url.rstrip('/')}/jobs/{job.id}"  # the job's page
    tags.update(diagnosis_tags(job))
    return tags


def diagnosis_tags(job: Job) -> dict[str, str]:
    """A tag per kind of diagnosis the job has (`diagnosis.dead_units` = `step 120: 11/16 units of dense_1`),
    so MLflow's UI can filter runs by it (`tags.diagnosis.dead_units != ''`); several of a kind joined by `; `."""
    found: dict[str, list[str]] = {}
    for d in job.diagnoses:
        evidence = d.evidence or {}
        if d.kind == "dead_units" or d.kind == "saturated_units":
            what = f"{len(evidence.get('units', []))}/{evidence.get('of')} units of {d.layer}"
        elif d.kind == "layer_dead":
            what = f"all {evidence.get('units')} units of {d.layer}"
        else:
            what = d.sentence.split(":")[0].split(". ")[0]
        found.setdefault(f"diagnosis.{d.kind}", []).append(f"step {d.step}: {what}" + ("" if d.ended_step is None else f" (to step {d.ended_step})"))
    return {key: "; ".join(values)[:MAX_TAG_VALUE] for key, values in found.items()}


def write_artifacts(session: Session, job: Job, folder: Path) -> None:
    """spec.json, model.npz (engine/export.py's; + a predict example), SVG plots, recorded gradients and traces."""
    (folder / "spec.json").write_text(json.dumps(job.spec, indent=2))
    problem = None
    if job.model:
        try:
            problem = problem_for(session, job.spec)
        except DatasetGone:  # deleted since the job ended: the run gets no example rows and no map of them
            problem = None
    if problem is not None:
        (folder / "model.npz").write_bytes(npz_bytes(job.spec, job.model))
        example = raw_inputs(problem)[:3]
        (folder / "predict_example.json").write_text(json.dumps({"request": {"X": example.tolist()},
                                                                 "response": predict(problem.spec, job.model, example.tolist())}, indent=2))
    series = metrics.read(session, job.id)
    plot_dir = folder / "plots"
    plot_dir.mkdir()
    for name, svg in plots(series).items():
        (plot_dir / f"{name}.svg").write_text(svg)
    if problem is not None and problem.X_train.shape[1] == 2:
        (plot_dir / "decision_boundary.svg").write_text(decision_boundary(problem, job.model))
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


