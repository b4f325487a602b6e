"""The MLflow mirror: one run per job, written from the store (the only module that imports mlflow).

`mirror_job(job_id)` takes the job's mirror lock, makes sure its run exists (params and tags on
creation), sends the points recorded since the cursor with `log_batch` in chunks within MLflow's
limits, and, once the job has ended, its artifacts and final status. Every call is safe to repeat:
points carry a fixed timestamp, so a point sent twice is stored once. When MLflow is unreachable
the cursor stays put and the job's mirror reads `pending` with the reason; the periodic back-fill
(worker.tasks.mirror_pending) picks it up later.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import time
from datetime import timezone
from pathlib import Path
from typing import Any

import numpy as np

# Fail fast instead of MLflow's default minutes of retries: the back-fill retries later.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunStatus, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from sqlalchemy import select, update  # noqa: E402

from engine.problem import Plan, build_problem, plan  # noqa: E402
from engine.spec import JobSpec, parse_spec  # noqa: E402
from services import metrics, mirror, step_arrays  # noqa: E402
from services.db import session_factory  # noqa: E402
from services.models import TERMINAL_VALUES, Job, JobStatus, Sweep  # noqa: E402
from services.settings import Settings  # noqa: E402

from . import plots  # noqa: E402

logger = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # mlflow/utils/validation.py: MAX_METRICS_PER_BATCH
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_VALUE = 6000
EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
RUN_STATUS = {JobStatus.succeeded.value: RunStatus.FINISHED, JobStatus.diverged.value: RunStatus.FAILED,
              JobStatus.failed.value: RunStatus.FAILED, JobStatus.cancelled.value: RunStatus.KILLED}


# -- what a run holds ---------------------------------------------------------------------------

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
    explicit weights: validating megabytes of numbers again would stall training for a second."""
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
    """The job's creation time in ms (SQLite returns naive datetimes, written in UTC)."""
    created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=timezone.utc)
    return int(created.timestamp() * 1000)


def job_key(job: Job) -> str:
    """Identifies the job's run even if another store (a reset database) reuses the job id."""
    return f"{job.id}-{created_ms(job)}"


def run_tags(job: Job, settings: Settings) -> dict[str, str]:
    tags = {k: v for k, v in ((t.key, t.value) for t in job.tags) if not k.startswith("mlflow.")}
    tags.update({"job_id": str(job.id), "job_key": job_key(job), "status": job.status, "mlflow.runName": job.name or f"job-{job.id}"})
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


# -- the mirror ---------------------------------------------------------------------------------

def mirror_job(job_id: int, settings: Settings) -> str:
    """One pass: bring the job's MLflow run up to date with the store. Returns the mirror state."""
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        if not settings.mlflow_tracking_uri:
            mirror.save_unlocked(session, job_id, mirror_state="disabled", mirror_error=None)
            return "disabled"
        token = mirror.acquire(session, job_id)
        if token is None:
            return "busy"
        try:
            return _mirror(session, job_id, token, settings)
        except MlflowException as exc:
            transient = exc.get_http_status_code() >= 500 or "Connection" in str(exc) or "Max retries" in str(exc)
            state = "pending" if transient else "failed"
            reason = f"MLflow {'unreachable' if transient else 'refused the data'}: {str(exc)[:500]}"
        except OSError as exc:  # connection refused, timeouts
            state, reason = "pending", f"MLflow unreachable: {type(exc).__name__}: {str(exc)[:500]}"
        except Exception as exc:  # noqa: BLE001 - recorded on the job, retried by the back-fill
            logger.exception("mirror of job %s failed", job_id)
            state, reason = "pending", f"{type(exc).__name__}: {str(exc)[:500]}"
        finally:
            session.rollback()
        mirror.save(session, job_id, token, mirror_state=state, mirror_error=reason)
        mirror.release(session, job_id, token)
        logger.warning("mirror of job %s: %s (%s)", job_id, state, reason)
        return state


def _mirror(session, job_id: int, token: str, settings: Settings) -> str:
    client = MlflowClient(settings.mlflow_tracking_uri)
    job = session.get(Job, job_id)
    session.refresh(job)
    if job.mlflow_run_id is None:
        experiment_id, run_id = _ensure_run(client, session, job, settings)
        mirror.save(session, job_id, token, mlflow_experiment_id=experiment_id, mlflow_run_id=run_id)
        session.refresh(job)
    ended = job.status in TERMINAL_VALUES
    cursor = dict(job.mirror_cursor or {})
    sent = job.mirror_points
    timestamp = created_ms(job)  # fixed per job: a point sent twice is stored once
    step_stride, epoch_stride = strides(job, settings.mlflow_max_points)
    pending = mirror.points_after(session, job_id, cursor)
    # While the job trains, send at most a budget of points per pass, shared across keys, so the
    # mirror (and an MLflow server on the same cores) never slows training; the rest follows at the end.
    per_key = None
    if not ended and settings.mlflow_live_points_per_second > 0 and pending:
        per_key = max(1, int(settings.mlflow_live_points_per_second * settings.mlflow_flush_seconds) // len(pending))
    batch: list[Metric] = []
    advanced: dict[str, int] = {}
    for key, (first, steps, values) in pending.items():
        stride = epoch_stride if key in EPOCH_KEYS else step_stride
        taken = 0
        for offset, (step, value) in enumerate(zip(steps.tolist(), values.tolist())):
            if per_key is not None and taken == per_key:
                break
            index = first + offset
            if index % stride == 0:
                batch.append(Metric(key, value, timestamp, step))
                taken += 1
            advanced[key] = index + 1
            if len(batch) == MAX_METRICS_PER_BATCH:
                client.log_batch(job.mlflow_run_id, metrics=batch)
                sent += len(batch)
                batch = []
                cursor.update(advanced)
                mirror.save(session, job_id, token, mirror_cursor=dict(cursor), mirror_points=sent)
    if ended:  # thinned keys always end on their last step (a repeat of a sent point is stored once)
        batch += [Metric(key, value, timestamp, step) for key, (step, value) in metrics.last_points(session, job_id).items()]
    for i in range(0, len(batch), MAX_METRICS_PER_BATCH):
        client.log_batch(job.mlflow_run_id, metrics=batch[i:i + MAX_METRICS_PER_BATCH])
    sent += len(batch)
    cursor.update(advanced)
    state = "pending"
    if ended:
        _finish_run(client, session, job)
        state = "synced"
    mirror.save(session, job_id, token, mirror_cursor=cursor, mirror_points=sent, mirror_state=state, mirror_error=None)
    mirror.release(session, job_id, token)
    return state


def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def _ensure_run(client: MlflowClient, session, job: Job, settings: Settings) -> tuple[str, str]:
    """The job's run, created once: found by its job_key tag if an earlier attempt created it.
    A sweep's jobs are nested under the sweep's parent run."""
    experiment_id = _experiment_id(client, job.experiment)
    found = client.search_runs([experiment_id], f"tags.job_key = '{job_key(job)}'", max_results=1)
    if found:
        return experiment_id, found[0].info.run_id
    tags = run_tags(job, settings)
    if job.sweep_id is not None:
        tags["mlflow.parentRunId"] = _ensure_sweep_run(client, session, job.sweep_id)
    run = client.create_run(experiment_id, run_name=tags["mlflow.runName"], tags=tags)
    params = [Param(k, v) for k, v in run_params(job).items()]
    for i in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run.info.run_id, params=params[i:i + MAX_PARAMS_TAGS_PER_BATCH])
    return experiment_id, run.info.run_id


def _sweep_key(sweep: Sweep) -> str:
    created = sweep.created_at if sweep.created_at.tzinfo else sweep.created_at.replace(tzinfo=timezone.utc)
    return f"sweep-{sweep.id}-{int(created.timestamp() * 1000)}"


def _ensure_sweep_run(client: MlflowClient, session, sweep_id: int) -> str:
    """The sweep's parent run (created once, found again by its sweep_key tag)."""
    sweep = session.get(Sweep, sweep_id)
    if sweep.mlflow_parent_run_id:
        return sweep.mlflow_parent_run_id
    experiment_id = _experiment_id(client, sweep.experiment)
    found = client.search_runs([experiment_id], f"tags.sweep_key = '{_sweep_key(sweep)}'", max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        run = client.create_run(experiment_id, run_name=sweep.name or f"sweep-{sweep.id}",
                                tags={"sweep_id": str(sweep.id), "sweep_key": _sweep_key(sweep), "kind": "sweep"})
        run_id = run.info.run_id
        request = sweep.request
        params = {"strategy": sweep.strategy, "objective": f"{sweep.objective_goal} {sweep.objective_metric}",
                  "seeds": str(sweep.seeds), "trials": str(sweep.n_trials), "max_parallel": str(sweep.max_parallel),
                  "space": json.dumps(request["space"])[:MAX_PARAM_VALUE]}
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(mlflow_parent_run_id=run_id))
    session.commit()
    return run_id


def finish_sweep_run(sweep_id: int, settings: Settings) -> None:
    """Log the finished sweep's importance and leaderboard to its parent run, and close it."""
    from services import sweeps

    with session_factory(settings.database_url)() as session:
        try:
            client = MlflowClient(settings.mlflow_tracking_uri)
            run_id = _ensure_sweep_run(client, session, sweep_id)
            sweep = session.get(Sweep, sweep_id)
            sweep_jobs = list(session.scalars(select(Job).where(Job.sweep_id == sweep_id)))
            board = sweeps.leaderboard(sweep, sweep_jobs)
            now = int(time.time() * 1000)
            metrics_out = [Metric(f"importance/{k}", v, now, 0) for k, v in (sweep.importance or {}).items()]
            if board and board[0]["objective_mean"] is not None:
                metrics_out.append(Metric(f"best/{sweep.objective_metric}", board[0]["objective_mean"], now, 0))
            client.log_batch(run_id, metrics=metrics_out)
            client.log_dict(run_id, {"leaderboard": board, "importance": sweep.importance}, "leaderboard.json")
            client.set_terminated(run_id, "FINISHED" if sweep.status == "finished" else "KILLED")
        except (MlflowException, OSError) as exc:
            logger.warning("sweep %s: could not finish its MLflow run: %s", sweep_id, exc)


def _finish_run(client: MlflowClient, session, job: Job) -> None:
    """Artifacts and the final status, once the job has ended (repeatable)."""
    run_id = job.mlflow_run_id
    with tempfile.TemporaryDirectory(prefix=f"bplab-job{job.id}-") as tmp:
        folder = Path(tmp)
        write_artifacts(session, job, folder)
        client.log_artifacts(run_id, str(folder))
    summary = job.summary or {}
    tags = [RunTag("status", job.status)]
    if job.error:
        tags.append(RunTag("error", json.dumps(job.error)[:5000]))
    metrics_final = [Metric(f"summary/{k}", float(v), created_ms(job), 0)
                     for k, v in summary.items() if isinstance(v, (int, float)) and math.isfinite(v)]
    client.log_batch(run_id, metrics=metrics_final, tags=tags)
    client.set_terminated(run_id, RunStatus.to_string(RUN_STATUS[job.status]))


def write_artifacts(session, job: Job, folder: Path) -> None:
    """spec.json, model.npz (+ a predict example), PNG plots, recorded gradients and traces."""
    (folder / "spec.json").write_text(json.dumps(job.spec, indent=2))
    if job.model:
        arrays = {f"weights_{i}": np.array(w) for i, w in enumerate(job.model["weights"])}
        arrays.update({f"biases_{i}": np.array(b) for i, b in enumerate(job.model["biases"])})
        for extra in ("input_mean", "input_std"):
            if extra in job.model:
                arrays[extra] = np.array(job.model[extra])
        np.savez(folder / "model.npz", **arrays)
        _predict_example(job, folder)
    series = metrics.read(session, job.id)
    plot_dir = folder / "plots"
    plot_dir.mkdir()
    plots.loss_curves(series, plot_dir / "loss.png")
    plots.gradient_norms(series, plot_dir / "gradient_norms.png")
    plots.dead_units(series, plot_dir / "dead_units.png")
    if job.model:
        _boundary(job, plot_dir / "decision_boundary.png")
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


def _predict_example(job: Job, folder: Path) -> None:
    from engine.inference import predict

    problem = build_problem(job.spec)
    rows = problem.X_train[:3]
    if problem.input_mean is not None:  # the API takes raw inputs
        rows = rows * problem.input_std + problem.input_mean
    example = {"request": {"X": rows.tolist()}, "response": predict(job.spec, job.model, rows.tolist())}
    (folder / "predict_example.json").write_text(json.dumps(example, indent=2))


def _boundary(job: Job, path: Path) -> None:
    from engine.inference import predict

    problem = build_problem(job.spec)
    if problem.X_train.shape[1] != 2:
        return
    X = problem.X_train
    if problem.input_mean is not None:
        X = X * problem.input_std + problem.input_mean
    labels = problem.Y_train.argmax(axis=1) if problem.Y_train.shape[1] > 1 else problem.Y_train[:, 0]

    def classes(rows: np.ndarray) -> np.ndarray:
        out = predict(job.spec, job.model, rows.tolist())
        return np.array(out.get("classes", out["outputs"]), dtype=float).reshape(len(rows), -1)[:, 0]

    plots.decision_boundary(classes, X, labels, path)


class LiveMirror:
    """Mirrors a running job every `interval` seconds from a background thread, so the training
    loop never waits on MLflow."""

    def __init__(self, job_id: int, settings: Settings):
        self.job_id, self.settings = job_id, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"mlflow-mirror-{job_id}", daemon=True)

    def __enter__(self) -> "LiveMirror":
        if self.settings.mlflow_tracking_uri:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.mlflow_flush_seconds):
            try:
                mirror_job(self.job_id, self.settings)
            except Exception:  # noqa: BLE001 - never let the mirror take the worker down
                logger.exception("live mirror of job %s", self.job_id)


