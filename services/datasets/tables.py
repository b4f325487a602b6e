"""An uploaded file read into a table of named columns, each numbers or text, or refused naming why.

CSV and Parquet are read by Apache Arrow (pyarrow, already here with MLflow): its CSV reader is
strict where a hand-written one drifts (a row with too few or too many fields is an error, not a row
padded with blanks), reads quoted newlines, strips a UTF-8 byte-order mark, keeps non-UTF-8 bytes
apart as binary (refused here), and parses in C++ blocks straight from the file, so an upload is
never held in memory as text and again as numbers. NPZ is read by NumPy with `allow_pickle=False`,
each member's size checked before it is inflated.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

FORMATS = ("csv", "npz", "parquet")
NPZ_MAGIC = b"PK\x03\x04"


class UploadRefused(Exception):
    """The file cannot become a dataset: `field` is the form field (or `file`), `reason` why; 413 for sizes."""

    def __init__(self, reason: str, field: str = "file", status: int = 422, **extra: object) -> None:
        super().__init__(reason)
        self.reason, self.field, self.status, self.extra = reason, field, status, extra


@dataclass
class Column:
    name: str
    kind: Literal["number", "string"]
    values: np.ndarray  # float64 (missing: NaN with `missing` set) or an object array of str ("" where missing)
    missing: np.ndarray  # bool per row: empty in the file


@dataclass
class Table:
    columns: list[Column] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.columns[0].values) if self.columns else 0

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def sniff_format(filename: str, head: bytes) -> str:
    """csv, npz or parquet, from the file's name and first bytes."""
    lowered = filename.lower()
    if head.startswith(NPZ_MAGIC) or lowered.endswith(".npz"):
        return "npz"
    if head.startswith(b"PAR1") or lowered.endswith((".parquet", ".pq")):
        return "parquet"
    return "csv"


def read_table(path: Path, form: str, delimiter: str = ",", max_columns: int = 1000, max_bytes: int = 2**31) -> Table:
    """The file at `path` as a Table, or UploadRefused."""
    if path.stat().st_size == 0:
        raise UploadRefused("the file is empty")
    if form == "npz":
        return _npz(path, max_bytes, max_columns)
    if form == "parquet":
        import pyarrow.parquet as pq

        try:
            arrow = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001  (pyarrow raises several kinds for a file that is not Parquet)
            raise UploadRefused(f"not a Parquet file pyarrow can read: {exc}") from None
        return _from_arrow(arrow, max_columns)
    return _csv(path, delimiter, max_columns)


def _csv(path: Path, delimiter: str, max_columns: int) -> Table:
    import pyarrow as pa
    import pyarrow.csv as pc

    header = _header(path, delimiter)
    if len(header) > max_columns:
        raise UploadRefused(f"the header has {len(header):,} columns, over the limit of {max_columns:,} (MAX_DATASET_COLUMNS)",
                            limit={"name": "MAX_DATASET_COLUMNS", "value": max_columns, "requested": len(header)})
    try:
        arrow = pc.read_csv(path, parse_options=pc.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                            convert_options=pc.ConvertOptions(null_values=[""], strings_can_be_null=True))
    except (pa.ArrowInvalid, ValueError) as exc:
        message = str(exc)
        if "Expected" in message and "columns" in message:
            row, fields = _ragged_row(path, delimiter, len(header))
            raise UploadRefused(f"row {row} has {fields} fields, the header has {len(header)} (a ragged file)", row=row) from None
        raise UploadRefused(f"not a CSV file that can be read: {message}") from None
    return _from_arrow(arrow, max_columns)


def _header(path: Path, delimiter: str) -> list[str]:
    with path.open("rb") as raw:
        first = raw.readline(1 << 20)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadRefused(f"the header is not UTF-8 text (byte {exc.start})") from None
    names = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    if not names or not "".join(names).strip():
        raise UploadRefused("the first line must be a header naming the columns")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not name.strip():
            raise UploadRefused(f"column {i + 1} of the header has no name")
        if name in seen:
            raise UploadRefused(f"the header names column {name!r} twice", column=name)
        seen.add(name)
    return names


def _ragged_row(path: Path, delimiter: str, width: int) -> tuple[int, int]:
    """The first data row (1 = the line after the header, as a spreadsheet numbers them below it) with another field count."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as text:
        for i, row in enumerate(csv.reader(text, delimiter=delimiter)):
            if i and len(row) != width:
                return i, len(row)
    return 0, width


def _from_arrow(arrow, max_columns: int) -> Table:  # noqa: ANN001  (a pyarrow.Table)
    import pyarrow as pa
    import pyarrow.compute as pc

    if arrow.num_columns > max_columns:
        raise UploadRefused(f"the file has {arrow.num_columns:,} columns, over the limit of {max_columns:,} (MAX_DATASET_COLUMNS)",
                            limit={"name": "MAX_DATASET_COLUMNS", "value": max_columns, "requested": arrow.num_columns})
    names = arrow.column_names
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UploadRefused(f"the file names column {twice!r} twice", column=twice)
    if arrow.num_rows == 0:
        raise UploadRefused("the file has a header but no rows")
    table = Table()
    for name in names:
        data = arrow.column(name).combine_chunks()
        kind = data.type
        missing = data.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind):
            values = pc.cast(data, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
            values[missing] = np.nan
            table.columns.append(Column(name, "number", values, missing))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values = np.array(data.fill_null("").to_pylist(), dtype=object)
            table.columns.append(Column(name, "string", values, missing | (values == "")))
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise UploadRefused(f"column {name!r} is not UTF-8 text", column=name)
        else:
            raise UploadRefused(f"column {name!r} holds {kind}, neither numbers nor text", column=name)
    return table


def _npz(path: Path, max_bytes: int, max_columns: int) -> Table:
    """`X` (n × d numbers) and `y` (n labels or numbers, or n × k numbers) as columns x0.., y (or y0..)."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UploadRefused("not an NPZ file (a zip of .npy arrays)") from None
    with archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    for member in ("X.npy", "y.npy"):
        if member not in sizes:
            raise UploadRefused(f"the NPZ holds no array {member[:-4]!r} (it needs X and y; it has {sorted(sizes)})")
    inflated = sizes["X.npy"] + sizes["y.npy"]
    if inflated > max_bytes:  # a zip bomb stops here, before anything is inflated
        raise UploadRefused(f"the NPZ's arrays are {inflated:,} bytes inflated, over the limit of {max_bytes:,} (MAX_DATASET_BYTES)",
                            status=413, limit={"name": "MAX_DATASET_BYTES", "value": max_bytes, "requested": inflated})
    try:
        with np.load(path, allow_pickle=False) as arrays:
            X, y = arrays["X"], arrays["y"]
    except ValueError as exc:  # object arrays need pickle, which is never allowed
        raise UploadRefused(f"the NPZ cannot be read without pickle (object arrays are refused): {exc}") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise UploadRefused(f"X must be a non-empty 2-D array (rows × features), it has shape {list(X.shape)}")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise UploadRefused(f"y must have one entry or row per row of X ({X.shape[0]}), it has shape {list(y.shape)}")
    if X.shape[1] + (1 if y.ndim == 1 else y.shape[1]) > max_columns:
        raise UploadRefused(f"X has {X.shape[1]:,} columns, over the limit of {max_columns:,} (MAX_DATASET_COLUMNS)")
    if X.dtype.kind not in "biuf":
        raise UploadRefused(f"X must hold numbers, it holds {X.dtype}")
    table = Table([Column(f"x{j}", "number", X[:, j].astype(np.float64), np.zeros(X.shape[0], bool)) for j in range(X.shape[1])])
    targets = [("y", y)] if y.ndim == 1 else [(f"y{j}", y[:, j]) for j in range(y.shape[1])]
    for name, values in targets:
        if values.dtype.kind in "biuf":
            table.columns.append(Column(name, "number", values.astype(np.float64), np.zeros(len(values), bool)))
        elif values.dtype.kind == "U":
            strings = np.array(values.tolist(), dtype=object)
            table.columns.append(Column(name, "string", strings, strings == ""))
        else:
            raise UploadRefused(f"y must hold numbers or text, it holds {values.dtype}")
    return table
