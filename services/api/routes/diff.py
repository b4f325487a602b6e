"""/api/v1/jobs/{a}/diff/{b}: where two runs of one architecture part, step by step."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, request

from engine.problem import plan
from engine.spec import parse_spec
from services.mlflow.run_params import spec_params
from services.store import jobs, metrics
from services.store.models import Job

from ..errors import ApiError
from ..openapi import operation
from ..owned import job_or_404
from ..request_session import db
from ..schemas.diff import Diff, DiffQuery

bp = Blueprint("diff", __name__, url_prefix="/api/v1/jobs")
COMPARED_FAMILIES = ("grad_norm/", "grad_max/", "weight_norm/", "update_ratio/")

Series = dict[str, tuple[np.ndarray, np.ndarray]]


def _architecture(job: Job) -> list:
    return [plan(parse_spec(job.spec)).n_inputs] + [[layer["units"], layer["activation"]] for layer in job.spec["model"]["layers"]]


def first_difference(series_a: Series, series_b: Series, tolerance: float) -> tuple[list[str], int, dict[str, Any] | None]:
    """(keys compared, steps compared, the first recorded step where a key differs by more than
    `tolerance` relative, or None)."""
    keys = sorted(k for k in set(series_a) & set(series_b) if k == "loss" or k.startswith(COMPARED_FAMILIES))
    first, compared = None, set()
    for key in keys:
        (steps_a, values_a), (steps_b, values_b) = series_a[key], series_b[key]
        common, ia, ib = np.intersect1d(steps_a, steps_b, return_indices=True)
        compared.update(common.tolist())
        va, vb = values_a[ia], values_b[ib]
        rel = np.abs(va - vb) / np.maximum(np.maximum(np.abs(va), np.abs(vb)), 1e-300)
        bad = np.flatnonzero(rel > tolerance)
        if bad.size and (first is None or common[bad[0]] < first["step"]):
            i = int(bad[0])
            first = {"step": int(common[i]), "key": key, "a": float(va[i]), "b": float(vb[i]), "relative_difference": float(rel[i])}
    return keys, len(compared), first


def spec_differences(spec_a: dict, spec_b: dict) -> dict[str, dict[str, Any]]:
    """The params (services/mlflow/run_params.py) whose values differ, plus inline data and explicit weights as wholes."""
    params_a, params_b = spec_params(spec_a), spec_params(spec_b)
    out = {name: {"a": params_a.get(name), "b": params_b.get(name)} for name in sorted(set(params_a) | set(params_b))
           if params_a.get(name) != params_b.get(name)}
    for name, pick in (("data", lambda s: (s["data"].get("X"), s["data"].get("y"))),
                       ("weights", lambda s: (s["model"].get("weights"), s["model"].get("biases")))):
        if pick(spec_a) != pick(spec_b) and any(v is not None for v in pick(spec_a) + pick(spec_b)):
            out[name] = {"a": "inline" if pick(spec_a)[0] is not None else None, "b": "inline" if pick(spec_b)[0] is not None else None}
    return out


@bp.get("/<int(min=1, max=2147483647):job_a>/diff/<int(min=1, max=2147483647):job_b>")
@operation("jobs", ok=Diff, query=DiffQuery, problems=("not-found", "different-architectures"))
def diff(job_a: int, job_b: int):
    """Compare two runs of one architecture step by step.

    The first recorded step where the loss, a gradient statistic or a weight norm differ by more
    than `tolerance` (relative), and how far apart the final weights are."""
    a, b = job_or_404(job_a), job_or_404(job_b)
    tol = request.context.query.tolerance
    arch_a, arch_b = _architecture(a), _architecture(b)
    if arch_a != arch_b:
        raise ApiError("different-architectures", f"job {a.id} is {arch_a}, job {b.id} is {arch_b}")
    keys, steps, first = first_difference(metrics.read(db(), a.id, inherited=True), metrics.read(db(), b.id, inherited=True), tol)
    body: dict[str, Any] = {"a": a.id, "b": b.id, "tolerance": tol, "spec_differences": spec_differences(a.spec, b.spec),
                            "architecture": arch_a, "keys_compared": keys,
                            "steps_compared": steps, "first_difference": first, "identical": first is None}
    if (branch := jobs.branch_point(db(), a.id, b.id)) is not None:
        body["branch"] = {"job": branch[0], "step": branch[1]}
    if a.model and b.model:
        per_layer = [float(np.max(np.abs(np.array(wa) - np.array(wb)))) for wa, wb in zip(a.model["weights"], b.model["weights"], strict=True)]
        body["final_weights"] = {"max_abs_difference": max(per_layer), "per_layer": per_layer}
    return body
