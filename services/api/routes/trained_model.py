"""/api/v1/jobs/{id}/model and /predict: the trained network's weights, and its outputs for new rows."""

from __future__ import annotations

from flask import Blueprint

from engine.inference import predict as engine_predict
from engine.spec import SpecError, parse_spec
from services.store.models import Job

from ..errors import ApiError
from ..owned import job_or_404
from ..query import json_body
from ..submission import invalid

bp = Blueprint("trained_model", __name__, url_prefix="/api/v1/jobs")


def _model_or_409(job: Job) -> dict:
    if job.model is None:
        raise ApiError(409, "No model yet", f"job {job.id} is {job.status}; the trained model is stored when it ends",
                       kind="no-model", status_now=job.status.value)
    return job.model


@bp.get("/<id:job_id>/model")
def get_model(job_id: int):
    job = job_or_404(job_id)
    return {"job_id": job.id, "status": job.status.value, "layers": job.spec["model"]["layers"], **_model_or_409(job)}


@bp.post("/<id:job_id>/predict")
def predict(job_id: int):
    job = job_or_404(job_id)
    model = _model_or_409(job)
    body = json_body()
    if not isinstance(body, dict) or "X" not in body:
        raise invalid([("X", "required: a list of input rows")], "Invalid prediction request")
    try:
        return engine_predict(parse_spec(job.spec), model, body["X"])
    except SpecError as exc:
        raise invalid(exc.errors, "Invalid prediction request") from None
