"""Predictions from a trained model (a result's `model`), as the API's /predict serves them."""

from __future__ import annotations

from typing import Any

import numpy as np

from .problem import network_from_model
from .spec import JobSpec, SpecError, parse_spec


def predict(spec: JobSpec | dict, model: dict[str, Any], X: Any) -> dict[str, Any]:
    """Outputs for rows `X`: `outputs` always; `classes` for bce (threshold 0.5) and cross_entropy (argmax),
    and `labels` (the classes' names) when an uploaded dataset gave them."""
    if not isinstance(spec, JobSpec):
        spec = parse_spec(spec)
    n_inputs = len(model["weights"][0][0])
    try:
        rows = np.array(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError([("X", "must be a list of rows of numbers")]) from None
    if rows.ndim != 2 or rows.shape[1] != n_inputs or rows.shape[0] == 0:
        raise SpecError([("X", f"expected a non-empty list of rows of {n_inputs} numbers, got shape {list(rows.shape)}")])
    if not np.isfinite(rows).all():
        raise SpecError([("X", "values must be finite")])
    if "input_mean" in model:
        rows = (rows - np.array(model["input_mean"])) / np.array(model["input_std"])
    with np.errstate(over="ignore"):  # float32's exp overflows to inf for z << 0, and the sigmoid is then exactly 0
        outputs = network_from_model(spec, model).predict(rows.astype(spec.dtype))[0]
    result: dict[str, Any] = {"outputs": outputs.tolist()}
    if spec.loss == "cross_entropy":
        result["classes"] = outputs.argmax(axis=1).tolist()
    elif spec.loss == "bce":
        result["classes"] = (outputs > 0.5).astype(int).tolist()
    labels = spec.data.classes
    if labels is not None and "classes" in result:  # a dataset named the classes: answer with the names too
        result["labels"] = [labels[c] if isinstance(c, int) else [labels[i] for i in c] for c in result["classes"]]
    return result
