"""A job's loss landscape, computed by a training worker for the API (routes/landscape.py): the job's spec
replayed to the step (engine/landscapes.py), the grid and the path, stored for every later request."""

from __future__ import annotations

import logging
import time
from typing import Any

from engine.landscapes import landscape_of
from engine.problem import CURVATURE_MAX_SAMPLES
from services.datasets.use import DatasetGone, problem_for
from services.jobs.public_errors import describe
from services.settings import Settings
from services.store import landscapes
from services.store.db import session_factory
from services.store.models import Job

logger = logging.getLogger(__name__)
INPUT_FIELDS = ("points", "step", "span")


def _refusal(exc: ValueError) -> dict[str, Any]:
    """The engine's refusal ("points: ...") as the problem the API answers with."""
    field, _, message = str(exc).partition(": ")
    if field == "points":
        return {"kind": "over-limit", "field": field, "message": message,
                "members": {"limit": {"name": "LANDSCAPE_MAX_WORK", "samples_at_most": CURVATURE_MAX_SAMPLES}}}
    if field in INPUT_FIELDS:
        return {"kind": "bad-query", "field": field, "message": message}
    return {"kind": "internal-error", "message": str(exc)}


def compute(landscape_id: int, settings: Settings) -> str:
    """Compute and store landscape `landscape_id` unless it is gone or done; what happened, in a word."""
    sessions = session_factory(settings.database_url)
    with sessions.begin() as session:
        row = landscapes.start(session, landscape_id)
        if row is None:
            return "nothing to do"
        asked, job = dict(row.request), session.get(Job, row.job_id)
        spec, last = job.spec, job.step
    started = time.monotonic()
    result, error = None, None
    try:
        with sessions() as session:
            problem = problem_for(session, spec)
        result = landscape_of(problem, asked["step"], asked["directions"], asked["points"], asked.get("span"), last=last)
    except DatasetGone as exc:
        error = {"kind": "not-recorded", "message": describe(exc)}
    except ValueError as exc:
        error = _refusal(exc)
    except Exception as exc:
        logger.exception("landscape %s failed", landscape_id)
        error = {"kind": "internal-error", "message": describe(exc)}
    seconds = time.monotonic() - started
    with sessions.begin() as session:
        landscapes.finish(session, landscape_id, result, error, seconds)
    return "failed" if error else f"computed in {seconds:.2f} s"
