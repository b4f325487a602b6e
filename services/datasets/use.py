"""A job's data from an uploaded dataset: the reference checked and completed when the job is stored
(`resolve`), and its rows as the engine takes them (`raw_data`), read once per process.

`resolve` checks the reference against the columns' profiles, without reading a row: the dataset is
the owner's, every named column exists, features are numbers with nothing missing or infinite, the
target suits the loss (class labels for bce and cross_entropy, numbers for mse). It writes into the
spec what its results depend on, so the stored spec says which data it trained on: the digest, the
row count, the feature list (default: every column but the target) and the target's classes in
sorted order (their indices are the labels the engine trains on; /predict names them).

`raw_data` reads a dataset's rows from the store once per process and keeps them by digest in a cache
bounded in bytes (DATASET_CACHE_BYTES): a sweep of 100 points on one dataset parses it once per worker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from engine.problem import Problem, RawData, build_problem, load_data
from engine.spec import JobSpec, SpecError, parse_spec
from services.store import datasets as store

from .canonical import decode
from .tables import Table

CACHE_BYTES = 512 * 2**20


class DatasetGone(SpecError):
    """The job's dataset was deleted after the job ended: what needs its rows (a chart of them) cannot be drawn."""


def resolve(session: Session, owner: str, document: dict[str, Any]) -> dict[str, Any]:
    """The job document with its dataset reference completed (a copy; documents without one as they are)."""
    data = document.get("data")
    if not isinstance(data, dict) or data.get("dataset") is None:
        return document
    dataset_id = data["dataset"]
    if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
        return document  # the spec's own validation names the wrong type
    found = store.get(session, dataset_id, owner)
    if found is None:
        raise SpecError([("data.dataset", f"no dataset {dataset_id} (GET /api/v1/datasets lists yours)")])
    if data.get("digest") not in (None, found.digest):
        raise SpecError([("data.digest", f"dataset {dataset_id} has digest {found.digest}, not {data['digest']}")])
    columns = {c["name"]: c for c in found.columns}
    names = ", ".join(list(columns)[:50])
    targets = data.get("target")
    target_list = [targets] if isinstance(targets, str) else list(targets) if isinstance(targets, list) else []
    for name in target_list:
        if name not in columns:
            raise SpecError([("data.target", f"no column {name!r}; the dataset's columns are {names}")])
    features = data.get("features")
    if features is None:
        features = [name for name in columns if name not in target_list]
        if not features:
            raise SpecError([("data.features", "the dataset has no column besides the target to learn from")])
    for i, name in enumerate(features if isinstance(features, list) else []):
        field = f"data.features[{i}]"
        if name not in columns:
            raise SpecError([(field, f"no column {name!r}; the dataset's columns are {names}")])
        if name in target_list:
            raise SpecError([(field, f"{name!r} is the target; a feature cannot be")])
        _usable_numbers(columns[name], field, "a feature")
    loss = document.get("loss")
    classes = _classes(columns, target_list, loss, document)
    completed = {**data, "features": features, "digest": found.digest, "rows": found.rows}
    if classes is not None:
        completed["classes"] = classes
    return {**document, "data": completed}


def _usable_numbers(column: dict[str, Any], field: str, what: str) -> None:
    name = column["name"]
    if column["type"] != "number":
        raise SpecError([(field, f"column {name!r} holds text; {what} must be numbers")])
    if column["missing"]:
        raise SpecError([(field, f"column {name!r} has {column['missing']:,} empty values, the first in row {column['first_missing_row']}")])
    if column.get("non_finite"):
        raise SpecError([(field, f"column {name!r} has {column['non_finite']:,} NaN or infinite values, the first in row "
                                 f"{column['first_non_finite_row']}")])


def _classes(columns: dict[str, dict[str, Any]], targets: list[str], loss: Any, document: dict[str, Any]) -> list | None:
    """The target's classes for bce and cross_entropy (None for mse, or bce on probabilities)."""
    if loss == "mse":
        for name in targets:
            if columns[name]["type"] != "number":
                raise SpecError([("data.target", f"column {name!r} holds class labels (text); mse needs numbers: use bce or cross_entropy")])
            _usable_numbers(columns[name], "data.target", "an mse target")
        return None
    if loss not in ("bce", "cross_entropy"):
        return None
    if len(targets) != 1:
        raise SpecError([("data.target", f"{loss} takes one target column of class labels, not {len(targets)}")])
    column = columns[targets[0]]
    name = column["name"]
    if column["missing"]:
        raise SpecError([("data.target", f"column {name!r} has {column['missing']:,} empty values, the first in row {column['first_missing_row']}")])
    if column["type"] == "number" and column.get("non_finite"):
        _usable_numbers(column, "data.target", "a target")
    classes = column["classes"]
    if classes is None:
        raise SpecError([("data.target", f"column {name!r} has more than 1,000 distinct values: not class labels (mse predicts numbers)")])
    if len(classes) < 2:
        raise SpecError([("data.target", f"column {name!r} has one class ({classes[0]!r}); there is nothing to tell apart")])
    layers = (document.get("model") or {}).get("layers") or []
    units = layers[-1].get("units") if layers and isinstance(layers[-1], dict) else None
    out_field = f"model.layers[{len(layers) - 1}].units"
    if loss == "bce":
        if len(classes) != 2:
            if column["type"] == "number" and column["min"] >= 0 and column["max"] <= 1:
                return None  # probabilities as targets
            raise SpecError([("data.target", f"bce tells two classes apart; column {name!r} has {len(classes)} "
                                             f"(use cross_entropy with {len(classes)} output units)")])
        return classes
    if isinstance(units, int) and units != len(classes):
        raise SpecError([(out_field, f"the target {name!r} has {len(classes)} classes, the output layer has {units} units")])
    return classes


class _Cache:
    """Tables by digest, the least recently used dropped beyond `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.tables, self.sizes, self.lock = max_bytes, OrderedDict(), {}, threading.Lock()
        self.loads = 0  # tables parsed from the store by this process (a test reads it)

    def get(self, session: Session, dataset_id: int, digest: str) -> Table:
        if store.get(session, dataset_id) is None:  # deleted: gone for every process, whatever it still holds
            with self.lock:
                self.sizes.pop(digest, None)
                self.tables.pop(digest, None)
            raise DatasetGone([("data.dataset", f"dataset {dataset_id} was deleted")])
        with self.lock:
            if digest in self.tables:
                self.tables.move_to_end(digest)
                return self.tables[digest]
        stored = store.data(session, dataset_id)
        if stored is None:
            raise DatasetGone([("data.dataset", f"dataset {dataset_id} was deleted")])
        table = decode(stored)
        size = sum(c.values.nbytes for c in table.columns)
        with self.lock:
            self.loads += 1
            self.tables[digest], self.sizes[digest] = table, size
            while len(self.tables) > 1 and sum(self.sizes.values()) > self.max_bytes:
                old, _ = self.tables.popitem(last=False)
                self.sizes.pop(old)
        return table


CACHE = _Cache(CACHE_BYTES)


def raw_data(session: Session, spec: JobSpec) -> RawData:
    """The spec's data as the engine takes it: an uploaded dataset's rows (cached), else the engine's own load."""
    data = spec.data
    if data.dataset is None:
        return load_data(spec)
    table = CACHE.get(session, data.dataset, data.digest)
    X = np.column_stack([table.column(name).values for name in data.features]).astype(np.float64)
    targets = [data.target] if isinstance(data.target, str) else data.target
    if data.classes is None:
        values = [table.column(name).values for name in targets]
        y = values[0] if len(values) == 1 else np.column_stack(values)
    else:
        labels = table.column(targets[0]).values
        index = {label: i for i, label in enumerate(data.classes)}
        y = np.array([index[label if isinstance(label, str) else _number(label)] for label in labels.tolist()], dtype=np.float64)
    return RawData(X, np.asarray(y, dtype=np.float64), "data.dataset")


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def problem_for(session: Session, spec: JobSpec | dict[str, Any]) -> Problem:
    """`build_problem` with the spec's rows read as `raw_data` reads them."""
    parsed = spec if isinstance(spec, JobSpec) else parse_spec(spec)
    return build_problem(parsed, raw_data(session, parsed) if parsed.data.dataset is not None else None)


def class_labels(spec: dict[str, Any]) -> list | None:
    """The classes a dataset gave the job's target, in the order of the network's outputs."""
    return (spec.get("data") or {}).get("classes")
