"""/api/v1/datasets: upload a table once, find it by id, see which jobs used it, delete it.

An upload is `multipart/form-data`. The HTTP server has the body on disk before a thread sees it
(waitress spools bodies past 512 KiB to a file), Werkzeug's form parser streams the file part into
another temporary file, and the reader (services/datasets/tables.py) parses it from there: the
upload is never held in memory whole, let alone twice. Past MAX_DATASET_BYTES it is a 413, said
from the Content-Length before the body is read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from flask import Blueprint, current_app, request, url_for

from services.datasets import canonical
from services.datasets.tables import UploadRefused, read_table, sniff_format
from services.store import datasets as store
from services.store.models import Dataset as DatasetRow

from ..auth import owner
from ..errors import ApiError
from ..openapi import operation
from ..representations import job_model
from ..request_session import db, transaction
from ..schemas.common import NoQuery
from ..schemas.datasets import Dataset, DatasetJobs, DatasetLinks, DatasetList, DatasetListQuery, DatasetUpload

bp = Blueprint("datasets", __name__, url_prefix="/api/v1/datasets")
DATASET_ID = "<int(min=1, max=2147483647):dataset_id>"
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the other fields, beyond the file itself


def dataset_model(row: DatasetRow) -> Dataset:
    return Dataset(id=row.id, name=row.name, digest=row.digest, format=row.format, rows=row.rows, columns=row.columns, bytes=row.bytes,
                   upload_bytes=row.upload_bytes, preview=row.preview, created_at=row.created_at,
                   links=DatasetLinks(self_=url_for("datasets.get_dataset", dataset_id=row.id),
                                      jobs=url_for("datasets.dataset_jobs", dataset_id=row.id),
                                      page=url_for("pages.datasets_page")))


def dataset_or_404(dataset_id: int) -> DatasetRow:
    row = store.get(db(), dataset_id, owner())
    if row is None:
        raise ApiError("not-found", f"no dataset {dataset_id}")
    return row


@bp.before_request
def _upload_limit() -> None:
    """An upload may be as large as MAX_DATASET_BYTES (other bodies: MAX_REQUEST_BYTES)."""
    if request.method == "POST" and request.path.rstrip("/") == "/api/v1/datasets":
        settings = current_app.config["SETTINGS"]
        limit = settings.max_dataset_bytes + FORM_OVERHEAD
        if request.content_length is not None and request.content_length > limit:
            raise ApiError("request-too-large", f"the upload is {request.content_length:,} bytes, over the limit of "
                           f"{settings.max_dataset_bytes:,} bytes (MAX_DATASET_BYTES)",
                           limit={"name": "MAX_DATASET_BYTES", "value": settings.max_dataset_bytes, "requested": request.content_length})
        request.max_content_length = limit


@bp.post("")
@operation("datasets", ok=Dataset, status=201, form=DatasetUpload, query=NoQuery, problems=("over-limit",),
           also={200: (Dataset, "the same table was uploaded before: that dataset")},
           response_headers={"Location": "the dataset's URL"})
def upload_dataset():
    """Upload a table (`multipart/form-data`: `file`, and optionally `name`, `delimiter`, `format`):
    CSV with a header row, NPZ with arrays `X` and `y`, or Parquet. A dataset is named by its
    content (`digest`): the same table uploaded again answers 200 with the dataset it already is."""
    if request.mimetype != "multipart/form-data":
        raise ApiError("unsupported-media-type", "upload the file as multipart/form-data (curl -F file=@data.csv)")
    form: DatasetUpload = request.context.form
    upload = form.file
    if not hasattr(upload, "stream"):
        raise ApiError("invalid-input", "`file` must be a file part", field="file")
    settings = current_app.config["SETTINGS"]
    with tempfile.TemporaryDirectory(prefix="bplab-upload-") as tmp:
        path = Path(tmp) / "upload"
        with path.open("wb") as out:
            shutil.copyfileobj(upload.stream, out, 1 << 20)
        size = path.stat().st_size
        if size > settings.max_dataset_bytes:
            raise ApiError("request-too-large", f"the file is {size:,} bytes, over the limit of {settings.max_dataset_bytes:,} "
                           "(MAX_DATASET_BYTES)", limit={"name": "MAX_DATASET_BYTES", "value": settings.max_dataset_bytes, "requested": size})
        with path.open("rb") as head:
            form_name = form.format or sniff_format(upload.filename or "", head.read(8))
        try:
            table = read_table(path, form_name, form.delimiter, settings.max_dataset_columns, settings.max_dataset_bytes)
        except UploadRefused as exc:
            kind = "request-too-large" if exc.status == 413 else ("over-limit" if "limit" in exc.extra else "invalid-dataset")
            raise ApiError(kind, exc.reason, field=exc.field, **exc.extra) from None
    encoded = canonical.encode(table)
    name = form.name or Path(upload.filename or "").name or "dataset"
    try:
        with transaction() as session:
            row, made = store.create(session, owner(), name=name[:200], digest=canonical.digest(table), form=form_name, rows=table.rows,
                                     columns=[canonical.profile(c) for c in table.columns], preview=canonical.preview(table),
                                     data=encoded, upload_bytes=size, max_owner_bytes=settings.max_owner_bytes)
    except store.OverQuota:
        raise ApiError("over-limit", f"the dataset's {len(encoded):,} bytes do not fit in this owner's {settings.max_owner_bytes:,} "
                       "(MAX_OWNER_BYTES, shared with the jobs' recordings)", field="file",
                       limit={"name": "MAX_OWNER_BYTES", "value": settings.max_owner_bytes, "requested": len(encoded)}) from None
    return dataset_model(row), 201 if made else 200, {"Location": url_for("datasets.get_dataset", dataset_id=row.id)}


@bp.get("")
@operation("datasets", ok=DatasetList, query=DatasetListQuery)
def list_datasets():
    """Your datasets, newest first, a page at a time (`next_cursor`)."""
    query: DatasetListQuery = request.context.query
    rows = store.page(db(), owner(), query.limit + 1, before_id=query.cursor)
    cursor = rows[query.limit - 1].id if len(rows) > query.limit else None
    return DatasetList(datasets=[dataset_model(r) for r in rows[: query.limit]], next_cursor=None if cursor is None else str(cursor),
                       next=None if cursor is None else url_for("datasets.list_datasets", cursor=cursor, limit=query.limit))


@bp.get(f"/{DATASET_ID}")
@operation("datasets", ok=Dataset, query=NoQuery, problems=("not-found",))
def get_dataset(dataset_id: int):
    """A dataset: its columns with their types and profiles, its size and first rows."""
    return dataset_model(dataset_or_404(dataset_id))


@bp.get(f"/{DATASET_ID}/jobs")
@operation("datasets", ok=DatasetJobs, query=NoQuery, problems=("not-found",))
def dataset_jobs(dataset_id: int):
    """Lineage: every job that used the dataset (newest first) and the sweeps they belong to."""
    dataset_or_404(dataset_id)
    used = store.jobs_using(db(), dataset_id)
    return DatasetJobs(dataset_id=dataset_id, jobs=[job_model(j) for j in used], sweeps=sorted({j.sweep_id for j in used if j.sweep_id}))


@bp.delete(f"/{DATASET_ID}")
@operation("datasets", status=204, query=NoQuery, problems=("not-found", "dataset-in-use"))
def delete_dataset(dataset_id: int):
    """Delete a dataset (its bytes return to your quota). Refused (409) while a job that has not ended
    uses it; jobs that ended keep their models, points and predictions."""
    row = dataset_or_404(dataset_id)
    with transaction() as session:
        waiting = store.unfinished_jobs(session, dataset_id)
        if waiting:
            raise ApiError("dataset-in-use", f"{waiting} job(s) that have not ended use dataset {dataset_id}; cancel them or let them end",
                           jobs=waiting)
        store.remove(session, row)
    return "", 204


