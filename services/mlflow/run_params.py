"""A job's spec as flat params under short names (`lr`, `batch_size`, `layers.0.units`): the same
columns in MLflow's runs and in the client's `jobs_frame`, one name per spec field."""

from __future__ import annotations

import re
from typing import Any

from engine.problem import Plan, plan_document
from engine.spec import JobSpec

# Spec fields under one short name each; the rest keep their dotted path with `optimizer.`,
# `model.` and `data.` dropped: one param per field, no `lr` beside `optimizer.lr`.
SHORT_NAMES = {"optimizer.name": "optimizer", "optimizer.schedule.name": "schedule", "data.builtin": "dataset"}
LOG_SCALE = ("lr", "weight_decay")  # also as log10_<name> in MLflow, so compare plots spread 0.001 .. 1
LEFT_OUT = ("data.X", "data.y", "data.classes", "model.weights", "model.biases")  # numbers and labels, not settings (in spec.json)


def param_name(path: str) -> str:
    """The param of a spec field: `optimizer.lr` -> `lr`, `model.layers[0].units` -> `layers.0.units`."""
    dotted = re.sub(r"\[(\d+)\]", r".\1", path)
    if dotted in SHORT_NAMES:
        return SHORT_NAMES[dotted]
    for prefix in ("optimizer.", "model.", "data."):
        if dotted.startswith(prefix):
            return dotted[len(prefix):]
    return dotted


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Spec fields by dotted path (`optimizer.lr`, `model.layers.0.units`), inline data and explicit weights left out."""
    if prefix in LEFT_OUT:
        return {}
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and isinstance(value[0], dict):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{i}"))
        return out
    return {prefix: value}


def architecture(document: dict, n_inputs: int) -> str:
    """`2-2(relu)-1(sigmoid)`: input width, then units(activation) per layer."""
    return "-".join([str(n_inputs)] + [f"{layer['units']}({layer['activation']})" for layer in document["model"]["layers"]])


def spec_params(document: dict, parsed: tuple[JobSpec, Plan] | None = None) -> dict[str, Any]:
    """Every spec field (defaults applied) under its short name, plus architecture, hidden_layers,
    dataset and n_params; values as JSON has them (a list stays a list)."""
    spec, sizes = parsed or plan_document(document)
    params = {param_name(path): value for path, value in flatten(spec.model_dump(mode="json", exclude_none=True)).items()}
    params.update({
        "architecture": architecture(document, sizes.n_inputs), "hidden_layers": len(spec.model.layers) - 1,
        "init": "explicit" if document["model"].get("weights") is not None else spec.model.init,
        "dataset": document["data"].get("builtin") or (f"datasets/{document['data']['dataset']}" if document["data"].get("dataset")
                                                       else f"inline({sizes.n_samples}x{sizes.n_inputs})"),
        "n_params": sizes.n_params,
        "lr": spec.optimizer.lr,  # the default lr the engine applied when the spec left it out
    })
    return params


def log_scale_params(sweep_request: dict[str, Any] | None) -> set[str]:
    """Params shown also as log10_<name>: the learning rate and weight decay, and whatever a sweep
    searches on a log scale (a log_uniform dimension, or a list of positive values spanning 100×)."""
    names = set(LOG_SCALE)
    for path, dim in ((sweep_request or {}).get("space") or {}).items():
        values = dim if isinstance(dim, list) else []
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        spans = bool(numbers) and len(numbers) == len(values) and min(numbers) > 0 and max(numbers) >= 100 * min(numbers)
        if (isinstance(dim, dict) and "log_uniform" in dim) or spans:
            names.add(param_name(path))
    return names
