"""/api/v1/jobs/{id}/metrics: the recorded points, whole or downsampled, as JSON or CSV."""

from __future__ import annotations

import csv
import io

import numpy as np
from flask import Blueprint, Response, request

from services.store import metrics

from ..owned import job_or_404
from ..query import int_arg, wants
from ..request_session import db

bp = Blueprint("metrics", __name__, url_prefix="/api/v1/jobs")


@bp.get("/<id:job_id>/metrics/keys")
def get_metric_keys(job_id: int):
    job_or_404(job_id)
    return {"keys": metrics.keys(db(), job_id)}


@bp.get("/<id:job_id>/metrics")
def get_metrics(job_id: int):
    """`{key: {"steps": [...], "values": [...]}}`; `keys`, `start`, `end`, `max_points`; CSV on request."""
    job_or_404(job_id)
    wanted = [k for k in request.args.get("keys", "").split(",") if k] or None
    start, end = int_arg("start", minimum=0), int_arg("end", minimum=0)
    max_points = int_arg("max_points", minimum=4)
    series = metrics.read(db(), job_id, wanted, start, end)
    for key in wanted or []:
        series.setdefault(key, (np.empty(0, dtype=np.int32), np.empty(0)))
    if max_points is not None:
        series = {k: metrics.downsample(s, v, max_points) for k, (s, v) in series.items()}
    if wants("application/json", "text/csv") == "text/csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["key", "step", "value"])
        for key in sorted(series):
            steps, values = series[key]
            writer.writerows((key, int(s), repr(float(v))) for s, v in zip(steps, values))
        return Response(out.getvalue(), mimetype="text/csv")
    return {k: {"steps": s.tolist(), "values": v.tolist()} for k, (s, v) in sorted(series.items())}
