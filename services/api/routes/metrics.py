"""/api/v1/jobs/{id}/metrics: the recorded points, whole or downsampled, as JSON or CSV."""

from __future__ import annotations

import csv
import io

import numpy as np
from flask import Blueprint, Response, request

from engine.recording import metric_keys
from engine.spec import parse_spec
from services.store import metrics
from services.store.models import TERMINAL, Job

from ..errors import ApiError
from ..negotiation import wants
from ..openapi import operation
from ..owned import job_or_404
from ..request_session import db
from ..schemas.common import NoQuery
from ..schemas.recorded import MetricKeys, Metrics, MetricsQuery, Series
from .jobs import JOB_ID

bp = Blueprint("metrics", __name__, url_prefix="/api/v1/jobs")


@bp.get(f"/{JOB_ID}/metrics/keys")
@operation("recorded", ok=MetricKeys, query=NoQuery, problems=("not-found",))
def get_metric_keys(job_id: int):
    """The metric keys the job recorded so far."""
    job_or_404(job_id)
    return MetricKeys(keys=metrics.keys(db(), job_id))


def _check_keys(job: Job, wanted: list[str]) -> None:
    """An unknown key is a 404 listing the known ones: those recorded, and while the job has not
    ended, those it can still record."""
    recorded = metrics.keys(db(), job.id)
    known = set(recorded)
    unknown = [key for key in wanted if key not in known]
    if unknown and job.status not in TERMINAL:
        known |= set(metric_keys(parse_spec(job.spec)))
        unknown = [key for key in unknown if key not in known]
    if unknown:
        raise ApiError("unknown-metric", f"job {job.id} has no metric {', '.join(map(repr, unknown))}; it recorded "
                       f"{', '.join(recorded[:20]) or 'nothing yet'}{' …' if len(recorded) > 20 else ''}",
                       field="keys", known_keys=sorted(known))


@bp.get(f"/{JOB_ID}/metrics")
@operation("recorded", ok=Metrics, query=MetricsQuery, problems=("not-found", "unknown-metric"),
           media={"text/csv": "one `key,step,value` row per point (with `Accept: text/csv`)"})
def get_metrics(job_id: int):
    """Recorded metrics, whole or downsampled.

    `{key: {"steps": [...], "values": [...]}}` for `keys` (default: all) between `start` and `end`;
    `max_points` keeps the first, min, max and last point of each bucket, so spikes stay visible."""
    query: MetricsQuery = request.context.query
    job = job_or_404(job_id)
    wanted = [k for k in (query.keys or "").split(",") if k] or None
    if wanted:
        _check_keys(job, wanted)
    series = metrics.read(db(), job_id, wanted, query.start, query.end)
    for key in wanted or []:
        series.setdefault(key, (np.empty(0, dtype=np.int32), np.empty(0)))
    if query.max_points is not None:
        series = {k: metrics.downsample(s, v, query.max_points) for k, (s, v) in series.items()}
    if wants("application/json", "text/csv") == "text/csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["key", "step", "value"])
        for key in sorted(series):
            steps, values = series[key]
            writer.writerows((key, int(s), repr(float(v))) for s, v in zip(steps, values))
        return Response(out.getvalue(), mimetype="text/csv")
    return Metrics({k: Series(steps=s.tolist(), values=v.tolist()) for k, (s, v) in sorted(series.items())})
