"""A table's canonical form: its digest (the same table, however it was uploaded, is one dataset), the
bytes the store keeps (a compressed NPZ, read back with `allow_pickle=False`), and each column's
profile (what a job's checks need without reading the rows: kind, missing and non-finite values with
the first row of each, the sorted classes of a label column)."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from typing import Any

import numpy as np

from .tables import Column, Table

MAX_CLASSES = 1000  # a column with more distinct values is not a class column
PREVIEW_ROWS = 5


def digest(table: Table) -> str:
    """SHA-256 over the columns' names, kinds and values in order (NaN as one bit pattern): the same
    table from a CSV with other quoting, line endings or a BOM has the same digest."""
    h = hashlib.sha256(json.dumps({"rows": table.rows, "columns": [[c.name, c.kind] for c in table.columns]}).encode())
    for column in table.columns:
        h.update(column.missing.astype(np.uint8).tobytes())
        if column.kind == "number":
            values = np.where(np.isnan(column.values), np.nan, column.values).astype("<f8")
            h.update(values.tobytes())
        else:
            for value in column.values.tolist():
                encoded = value.encode()
                h.update(struct.pack("<I", len(encoded)) + encoded)
    return h.hexdigest()


def encode(table: Table) -> bytes:
    """The table as the store keeps it: `names` (JSON), `c<i>` per column (float64 or unicode), `m<i>` where values are missing."""
    arrays: dict[str, np.ndarray] = {"names": np.array(json.dumps([[c.name, c.kind] for c in table.columns]))}
    for i, column in enumerate(table.columns):
        arrays[f"c{i}"] = column.values if column.kind == "number" else np.array(column.values.tolist(), dtype=str)
        if column.missing.any():
            arrays[f"m{i}"] = column.missing
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def decode(data: bytes) -> Table:
    """The stored bytes as a Table (no pickle)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        names = json.loads(str(arrays["names"]))
        table = Table()
        for i, (name, kind) in enumerate(names):
            values = arrays[f"c{i}"]
            missing = arrays[f"m{i}"] if f"m{i}" in arrays else np.zeros(len(values), bool)
            table.columns.append(Column(name, kind, values.astype(np.float64) if kind == "number" else values.astype(object), missing))
    return table


def _first(mask: np.ndarray) -> int | None:
    found = np.flatnonzero(mask)
    return int(found[0]) + 1 if found.size else None  # rows count from 1, the first below the header


def profile(column: Column) -> dict[str, Any]:
    """What a job's checks need of a column, computed once at upload."""
    entry: dict[str, Any] = {"name": column.name, "type": column.kind, "missing": int(column.missing.sum()),
                             "first_missing_row": _first(column.missing)}
    present = ~column.missing
    if column.kind == "number":
        finite = np.isfinite(column.values)
        entry["non_finite"] = int((present & ~finite).sum())
        entry["first_non_finite_row"] = _first(present & ~finite)
        usable = column.values[present & finite]
        entry.update(min=float(usable.min()) if usable.size else None, max=float(usable.max()) if usable.size else None,
                     mean=float(usable.mean()) if usable.size else None)
        distinct = np.unique(usable)
        entry["classes"] = [int(v) if float(v).is_integer() else float(v) for v in distinct] if distinct.size <= MAX_CLASSES else None
    else:
        distinct = sorted(set(column.values[present].tolist()))
        entry["classes"] = distinct if len(distinct) <= MAX_CLASSES else None
    entry["distinct"] = len(distinct) if entry["classes"] is not None else None
    return entry


def preview(table: Table, rows: int = PREVIEW_ROWS) -> list[dict[str, Any]]:
    """The first rows as JSON objects (missing values as null, non-finite numbers as text)."""
    out = []
    for r in range(min(rows, table.rows)):
        row: dict[str, Any] = {}
        for column in table.columns:
            value = column.values[r]
            if column.missing[r]:
                row[column.name] = None
            elif column.kind == "number":
                number = float(value)
                row[column.name] = (int(number) if number.is_integer() else number) if np.isfinite(number) else str(number)
            else:
                row[column.name] = value
        out.append(row)
    return out
