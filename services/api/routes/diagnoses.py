"""/api/v1/jobs/{id}/diagnoses: what went wrong in a job, found while it trained."""

from __future__ import annotations

from flask import Blueprint

from services.store import diagnoses
from services.store.models import Diagnosis as DiagnosisRow

from ..openapi import operation
from ..owned import job_or_404
from ..request_session import db
from ..schemas.common import NoQuery
from ..schemas.diagnoses import Diagnosis, DiagnosisList
from .jobs import JOB_ID

bp = Blueprint("diagnoses", __name__, url_prefix="/api/v1/jobs")


def diagnosis_model(row: DiagnosisRow) -> Diagnosis:
    return Diagnosis(id=row.id, kind=row.kind, severity=row.severity, step=row.step, ended_step=row.ended_step, layer=row.layer or None,
                     sentence=row.sentence, evidence=row.evidence, found_at=row.found_at)


@bp.get(f"/{JOB_ID}/diagnoses")
@operation("jobs", ok=DiagnosisList, query=NoQuery, problems=("not-found",))
def get_diagnoses(job_id: int):
    """The job's diagnoses so far (dead units, vanishing gradients, a rising loss, ...), each with where it
    began and ended, its evidence and a sentence; a running job's grow as it trains (its event stream
    sends each as it is found)."""
    job_or_404(job_id)
    return DiagnosisList(job_id=job_id, diagnoses=[diagnosis_model(row) for row in diagnoses.of_job(db(), job_id)])
