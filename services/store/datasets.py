"""Uploaded datasets: stored once per owner and digest, read by id, listed a page at a time, the jobs
that used them, and deleted when no job still needs them to train."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import TERMINAL, Dataset, DatasetBlob, Job
from .quota import release, reserve


class OverQuota(Exception):
    """The dataset does not fit in the owner's MAX_OWNER_BYTES."""


def find(session: Session, owner: str, digest: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.owner == owner, Dataset.digest == digest))


def create(session: Session, owner: str, *, name: str, digest: str, form: str, rows: int, columns: list[dict[str, Any]],
           preview: list[dict[str, Any]], data: bytes, upload_bytes: int, max_owner_bytes: int) -> tuple[Dataset, bool]:
    """The owner's dataset of this digest: made now (True), or the one already stored (False: two
    uploads of one table at once make one row; the second finds the first's). Reserves its bytes of
    the owner's quota, or OverQuota."""
    existing = find(session, owner, digest)
    if existing is not None:
        return existing, False
    if not reserve(session, owner, len(data), max_owner_bytes):
        raise OverQuota(len(data))
    row = Dataset(owner=owner, name=name, digest=digest, format=form, rows=rows, columns=columns, preview=preview, bytes=len(data),
                  upload_bytes=upload_bytes)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
            session.add(DatasetBlob(dataset_id=row.id, data=data))
            session.flush()
    except IntegrityError:  # the same table, uploaded at the same moment: theirs won
        release(session, owner, len(data))
        found = find(session, owner, digest)
        if found is None:
            raise
        return found, False
    return row, True


def get(session: Session, dataset_id: int, owner: str | None = None) -> Dataset | None:
    row = session.get(Dataset, dataset_id)
    return row if row is not None and (owner is None or row.owner == owner) else None


def data(session: Session, dataset_id: int) -> bytes | None:
    """The rows in their canonical form."""
    return session.scalar(select(DatasetBlob.data).where(DatasetBlob.dataset_id == dataset_id))


def page(session: Session, owner: str, limit: int, before_id: int | None = None) -> list[Dataset]:
    """Newest first; `before_id` is the cursor."""
    query = select(Dataset).where(Dataset.owner == owner).order_by(Dataset.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Dataset.id < before_id)
    return list(session.scalars(query))


def jobs_using(session: Session, dataset_id: int, limit: int = 1000) -> list[Job]:
    """The jobs that trained (or will) on the dataset, newest first."""
    return list(session.scalars(select(Job).where(Job.dataset_id == dataset_id).order_by(Job.id.desc()).limit(limit)))


def unfinished_jobs(session: Session, dataset_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Job).where(Job.dataset_id == dataset_id, Job.status.notin_(TERMINAL)))


def remove(session: Session, dataset: Dataset) -> None:
    """Delete the dataset and its rows, giving its bytes back to the owner's quota (the caller checked
    that no unfinished job uses it; ended jobs keep their models, points and specs)."""
    session.execute(delete(DatasetBlob).where(DatasetBlob.dataset_id == dataset.id))
    release(session, dataset.owner, dataset.bytes)
    session.delete(dataset)
    session.flush()
