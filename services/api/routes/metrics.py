"""/api/v1/jobs/{id}/metrics: the recorded points, whole or downsampled, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import numpy as np
from flask import Blueprint, Response, current_app, request

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
    return MetricKeys(keys=metrics.keys(db(), job_id, inherited=True))


def _check_keys(job: Job, wanted: list[str]) -> None:
    """An unknown key is a 404 listing the known ones: those recorded, and while the job has not
    ended, those it can still record."""
    recorded = metrics.keys(db(), job.id, inherited=True)
    known = set(recorded)
    unknown = [key for key in wanted if key not in known]
    if unknown and job.status not in TERMINAL:
        known |= set(metric_keys(parse_spec(job.spec), job.n_params))
        unknown = [key for key in unknown if key not in known]
    if unknown:
        raise ApiError("unknown-metric", f"job {job.id} has no metric {', '.join(map(repr, unknown))}; it recorded "
                       f"{', '.join(recorded[:20]) or 'nothing yet'}{' …' if len(recorded) > 20 else ''}",
                       field="keys", known_keys=sorted(known))


def _check_size(job_id: int, wanted: list[str] | None, query: MetricsQuery) -> None:
    """Refuse an answer over MAX_RESPONSE_POINTS before reading it, saying how to ask for less."""
    limit = current_app.config["SETTINGS"].max_response_points
    counts = metrics.count(db(), job_id, wanted, query.start, query.end, inherited=True)
    points = sum(n if query.max_points is None else min(n, query.max_points) for n in counts.values())
    if points > limit:
        keys = max(1, len(counts))
        raise ApiError("answer-too-large", f"the answer would hold about {points:,} points ({len(counts):,} keys), over the "
                       f"{limit:,} one answer may (MAX_RESPONSE_POINTS); ask for fewer keys, steps `start`..`end` "
                       f"(about {limit // keys:,} steps per key fit), or max_points",
                       field="keys" if len(counts) > 1 else "end", limit={"name": "MAX_RESPONSE_POINTS", "value": limit, "requested": points})


def _csv_rows(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> Iterator[str]:
    """`key,step,value` rows, written as they are sent."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["key", "step", "value"])
    for key in sorted(series):
        steps, values = series[key]
        for start in range(0, len(steps), 10_000):
            writer.writerows((key, int(s), repr(float(v))) for s, v in zip(steps[start:start + 10_000], values[start:start + 10_000], strict=True))
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


@bp.get(f"/{JOB_ID}/metrics")
@operation("recorded", ok=Metrics, query=MetricsQuery, problems=("not-found", "unknown-metric", "answer-too-large"),
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
    _check_size(job_id, wanted, query)
    series = metrics.read(db(), job_id, wanted, query.start, query.end, inherited=True)
    for key in wanted or []:
        series.setdefault(key, (np.empty(0, dtype=np.int32), np.empty(0)))
    if query.max_points is not None:
        series = {k: metrics.downsample(s, v, query.max_points) for k, (s, v) in series.items()}
    if wants("application/json", "text/csv") == "text/csv":
        return Response(_csv_rows(series), mimetype="text/csv")
    return Metrics({k: Series(steps=s.tolist(), values=v.tolist()) for k, (s, v) in sorted(series.items())})
