"""/api/v1/jobs/{id}/model and /predict: the trained network's weights, and its outputs for new rows."""

from __future__ import annotations

import math

from flask import Blueprint, Response, current_app, request

from engine import export
from engine.inference import predict as engine_predict
from engine.spec import SpecError, parse_spec
from services.mlflow import registry
from services.store import model_versions
from services.store.models import Job, JobStatus

from ..errors import ApiError
from ..openapi import operation
from ..owned import job_or_404
from ..representations import model_version
from ..request_session import db, transaction
from ..schemas.common import NoQuery
from ..schemas.jobs import ModelVersion
from ..schemas.trained_model import ModelQuery, Prediction, PredictRequest, RegisterRequest, TrainedModel
from ..submission import invalid
from .jobs import JOB_ID

bp = Blueprint("trained_model", __name__, url_prefix="/api/v1/jobs")


def _model_or_409(job: Job) -> dict:
    if job.model is None:
        raise ApiError("no-model", f"job {job.id} is {job.status}; the trained model is stored when it ends", status_now=job.status.value)
    return job.model


def _usable_or_409(job: Job) -> dict:
    model = _model_or_409(job)
    if job.status == JobStatus.diverged or not export.finite(model):
        raise ApiError("unusable-model", f"job {job.id} {'diverged' if job.status == JobStatus.diverged else 'has non-finite weights'}; "
                       "its outputs would mean nothing", status_now=job.status.value)
    return model


MODEL_FILES = {
    "application/onnx": "`format=onnx`: the ONNX model (input `x`, output `probabilities` or `outputs`)",
    "application/octet-stream": "`format=safetensors` or `format=npz`: the file",
}


def exported(job: Job, model: dict, form: str) -> bytes:
    """The job's model in one of the file formats (engine/export.py)."""
    if form == "onnx":
        return export.onnx_bytes(job.spec, model, export.provenance(job.id, job.spec))
    if form == "safetensors":
        return export.safetensors_bytes(job.spec, model, export.provenance(job.id, job.spec))
    return export.npz_bytes(job.spec, model)


@bp.get(f"/{JOB_ID}/model")
@operation("model", ok=TrainedModel, query=ModelQuery, problems=("not-found", "no-model", "unusable-model"), media=MODEL_FILES)
def get_model(job_id: int):
    """The trained network: final weights and biases per layer (and the input standardisation, when used),
    or (`format`) the same network as an ONNX model, a PyTorch state_dict in safetensors, or NumPy arrays."""
    job = job_or_404(job_id)
    form = request.context.query.format
    if form == "json":
        return TrainedModel(job_id=job.id, status=job.status.value, layers=job.spec["model"]["layers"], **_model_or_409(job))
    body = exported(job, _usable_or_409(job), form)
    return Response(body, mimetype=export.MEDIA_TYPES[form],
                    headers={"Content-Disposition": f'attachment; filename="job-{job.id}.{form}"', "Cache-Control": "no-store"})


@bp.post(f"/{JOB_ID}/predict")
@operation("model", ok=Prediction, query=NoQuery, body=PredictRequest, problems=("not-found", "no-model", "unusable-model"))
def predict(job_id: int):
    """Outputs of the trained network for new input rows (and classes, for classification losses)."""
    job = job_or_404(job_id)
    model = _usable_or_409(job)
    try:
        result = engine_predict(parse_spec(job.spec), model, request.context.json.X)
    except SpecError as exc:
        raise invalid(exc.errors, "invalid-input") from None
    if not all(math.isfinite(v) for row in result["outputs"] for v in row):
        raise ApiError("unusable-model", f"job {job.id}'s network overflows on these rows: its outputs are not finite",
                       status_now=job.status.value)
    return result


@bp.post(f"/{JOB_ID}/register")
@operation("model", ok=ModelVersion, status=201, query=NoQuery, body=RegisterRequest,
           problems=("not-found", "no-model", "unusable-model", "model-not-mirrored", "mlflow-off", "name-taken", "mlflow-unavailable"),
           response_headers={"Location": "the job, whose `registered` lists the version"})
def register(job_id: int):
    """Register the job's model in MLflow's model registry: a new version of the registered model
    `name` (created on first use; with AUTH=on, yours alone) from the job's run. The run gets its
    model from the MLflow worker seconds after the job succeeds; until then this is a 409 with
    `Retry-After`."""
    job = job_or_404(job_id)
    _usable_or_409(job)
    settings = current_app.config["SETTINGS"]
    if not settings.mlflow_tracking_uri:
        raise ApiError("mlflow-off", "this server mirrors nothing to MLflow (MLFLOW_TRACKING_URI is empty)")
    if job.mlflow_model_id is None or job.mlflow_run_id is None:
        wait = max(1, round(2 * settings.mlflow_flush_seconds))
        raise ApiError("model-not-mirrored", f"job {job.id}'s run has no MLflow model yet (mirror: {job.mirror_state.value}); "
                       f"retry in {wait} s", headers={"Retry-After": str(wait)}, mirror_state=job.mirror_state.value)
    name = request.context.json.name
    try:
        made = registry.register(settings, job.owner, name, job.mlflow_run_id, job.mlflow_model_id)
    except registry.NameTaken as exc:
        raise ApiError("name-taken", str(exc), field="name") from None
    except registry.MlflowUnreachable as exc:
        raise ApiError("mlflow-unavailable", str(exc), headers={"Retry-After": "5"}) from None
    with transaction() as session:
        row = model_versions.add(session, job.id, made.name, made.version)
    db().expire_all()
    return model_version(row), 201, {"Location": f"/api/v1/jobs/{job.id}"}
