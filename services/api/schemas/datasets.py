"""Uploaded datasets: the upload form, a dataset, a page of them, the jobs and sweeps that used one."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from spectree.model_adapter.pydantic_adapter import BaseFile

from .common import Id, Out, Query, Unset
from .jobs import MAX_PAGE, Job


class DatasetUpload(BaseModel):
    """`multipart/form-data`: the file and how to read it."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    file: BaseFile = Field(description="CSV with a header row (UTF-8), NPZ with arrays `X` and `y`, or Parquet")
    name: str | None = Field(default=None, min_length=1, max_length=200, description="default: the file's name")
    delimiter: str = Field(default=",", min_length=1, max_length=1, pattern=r'^[^"\r\n]$',
                           description="CSV: the field delimiter (`,`, `;`, a tab …; not a quote or a line break)")
    format: Literal["csv", "npz", "parquet"] | None = Field(default=None, description="default: from the file's name and first bytes")


class DatasetColumn(Out):
    name: str
    type: Literal["number", "string"]
    missing: int = Field(description="empty values")
    first_missing_row: int | None = Field(description="the first row with an empty value (rows count from 1, below the header)")
    non_finite: int | None = Field(default=None, description="numbers: NaN or ±inf values")
    first_non_finite_row: int | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    distinct: int | None = Field(description="distinct values, up to 1,000 (more: null)")
    classes: list[str] | list[float] | None = Field(description="the distinct values in sorted order (up to 1,000): a target's classes")


class DatasetLinks(Out):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    self_: str = Field(alias="self")
    jobs: str
    page: str


class Dataset(Out):
    id: int
    name: str
    digest: str = Field(description="SHA-256 of the table's canonical form: the same table uploaded again is this dataset")
    format: str = Field(description="the uploaded file's format")
    rows: int
    columns: list[DatasetColumn]
    bytes: int = Field(description="what the store keeps of it (counted in MAX_OWNER_BYTES)")
    upload_bytes: int = Field(description="the file as uploaded")
    preview: list[dict[str, Any]] = Field(description="the first rows")
    created_at: datetime
    links: DatasetLinks


class DatasetList(Out):
    datasets: list[Dataset]
    next_cursor: str | None
    next: str | None


class DatasetListQuery(Query):
    cursor: Id | Unset = Field(default=None, description="`next_cursor` of the previous page")
    limit: int = Field(default=50, ge=1, le=MAX_PAGE, description=f"page size, 1-{MAX_PAGE}")


class DatasetJobs(Out):
    dataset_id: int
    jobs: list[Job] = Field(description="every job that used the dataset, newest first")
    sweeps: list[int] = Field(description="the sweeps those jobs belong to")
