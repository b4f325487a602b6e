"""The versions of MLflow registered models made from jobs (the job's JSON lists them)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from .models import ModelVersion


def add(session: Session, job_id: int, name: str, version: str) -> ModelVersion:
    """Record a version just created in MLflow's registry from the job's run."""
    row = ModelVersion(job_id=job_id, name=name, version=version)
    session.add(row)
    session.flush()
    return row
