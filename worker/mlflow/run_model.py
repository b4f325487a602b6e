"""The MLflow model of a succeeded job's run: the ONNX export (engine/export.py) logged with MLflow's
`onnx` flavor, so the run page lists it, *Register model* takes it, `mlflow.pyfunc.load_model(
"runs:/<run>/model")` predicts with it and `mlflow models serve` serves it.

Logged as MLflow 3 logs a model (a LoggedModel of the run's experiment, its files uploaded, the run's
output, then READY), but with the client of the tracking server the mirror writes to rather than the
fluent API's global one, and repeatably: a pass that died half-way finds the model it started and
finishes it instead of logging a second. The graph gives one output per column (`output_columns`),
since pyfunc answers a DataFrame with a column per graph output.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema
from sqlalchemy.orm import Session

from engine import export
from engine.inference import predict
from engine.spec import JobSpec, parse_spec
from services.datasets.use import DatasetGone, raw_data
from services.store.models import Job

MODEL_NAME = "model"  # runs:/<run>/model
EXAMPLE_ROWS = 3


def feature_columns(spec: JobSpec, n_inputs: int) -> list[str]:
    """The input columns the signature names: a dataset's feature columns, else `x0`, `x1`, ..."""
    return list(spec.data.features) if spec.data.features else [f"x{i}" for i in range(n_inputs)]


def log_run_model(client: MlflowClient, session: Session, job: Job, experiment_id: str) -> str:
    """Log the job's model on its run (once) and return the LoggedModel's id."""
    import mlflow.onnx

    run_id = job.mlflow_run_id
    existing = _logged(client, run_id)
    if existing is not None and existing.status == LoggedModelStatus.READY:
        return existing.model_id
    logged = existing or client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id,
                                                    tags={"job_id": str(job.id)})
    spec = parse_spec(job.spec)
    n_inputs = len(job.model["weights"][0][0])
    try:
        rows = raw_data(session, spec).X[:EXAMPLE_ROWS]
    except DatasetGone:  # deleted since the job ended: an example of the right width instead of its first rows
        rows = np.zeros((1, n_inputs))
    example = pd.DataFrame(rows, columns=feature_columns(spec, n_inputs))
    outputs = np.asarray(predict(spec, job.model, example.to_numpy())["outputs"])
    columns = export.output_columns(spec, outputs.shape[1])
    signature = ModelSignature(inputs=Schema([ColSpec("double", name) for name in example.columns]),
                               outputs=Schema([ColSpec("double" if spec.dtype == "float64" else "float", c) for c in columns]))
    proto = export.onnx_model(spec, job.model, export.provenance(job.id, job.spec), columns=True)
    with tempfile.TemporaryDirectory(prefix=f"bplab-model{job.id}-") as tmp:
        local = Path(tmp) / MODEL_NAME
        description = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id, run_id=run_id, model_id=logged.model_id)
        mlflow.onnx.save_model(proto, str(local), mlflow_model=description, signature=signature, input_example=example,
                               pip_requirements=requirements(), onnx_execution_providers=["CPUExecutionProvider"],
                               save_as_external_data=False)
        client.log_model_artifacts(logged.model_id, str(local))
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged.model_id


@functools.cache
def requirements() -> list[str]:
    """What serving the model needs, pinned to what this worker runs: given, because MLflow would
    otherwise infer them by loading the model in a subprocess for every run (1.6 s each, measured)."""
    import mlflow
    import mlflow.onnx

    return [f"mlflow=={mlflow.__version__}", *mlflow.onnx.get_default_pip_requirements()]


def _logged(client: MlflowClient, run_id: str) -> LoggedModel | None:
    """The run's model if a pass already created it (ready, or left pending by a pass that died)."""
    run = client.get_run(run_id)
    for output in (run.outputs.model_outputs if run.outputs else []):
        model = client.get_logged_model(output.model_id)
        if model.name == MODEL_NAME:
            return model
    found = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=10)
    return next((m for m in found if m.name == MODEL_NAME), None)


def delete_run_models(client: MlflowClient, run_id: str) -> None:
    """Delete the models of a run whose job was deleted (an archived job's run keeps its model, as MLflow's
    soft delete of the run keeps everything of it for a restore)."""
    experiment_id = client.get_run(run_id).info.experiment_id
    for model in client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=100):
        client.delete_logged_model(model.model_id)
