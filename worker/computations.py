"""What the API asks a training worker to compute from an ended job (services/store/computations.py): a loss
landscape (engine/landscapes.py) or a replayed step's full gradients and trace (engine/replay.py), each from
the job's spec replayed, stored for every later request."""

from __future__ import annotations

import logging
import time
from typing import Any

from engine.landscapes import landscape_of
from engine.problem import CURVATURE_MAX_SAMPLES
from engine.replay import Chain, Kept, replayed_record
from services.datasets.use import DatasetGone
from services.jobs.public_errors import describe
from services.settings import Settings
from services.store import computations
from services.store.db import session_factory
from services.store.models import Job

from .job_steps import chain_of, kept_of

logger = logging.getLogger(__name__)
INPUT_FIELDS = ("points", "step", "span")


def _refusal(exc: ValueError) -> dict[str, Any]:
    """The engine's refusal ("points: ...") as the problem the API answers with."""
    field, _, message = str(exc).partition(": ")
    if field == "points":
        return {"kind": "over-limit", "field": field, "message": message,
                "members": {"limit": {"name": "LANDSCAPE_MAX_WORK", "samples_at_most": CURVATURE_MAX_SAMPLES}}}
    if field in INPUT_FIELDS:
        return {"kind": "not-recorded" if field == "step" else "bad-query", "field": field, "message": message}
    return {"kind": "internal-error", "message": str(exc)}


def _landscape(run: Chain, _kept: Kept, asked: dict[str, Any], last: int) -> dict[str, Any]:
    """The path to `last` passes every recorded step: it is trained again from the start (kept states skip nothing)."""
    return landscape_of(run, asked["step"], asked["directions"], asked["points"], asked.get("span"), last=last)


def _replay(run: Chain, kept: Kept, asked: dict[str, Any], _last: int) -> dict[str, Any]:
    record, start = replayed_record(run, asked["step"], kept)
    return {"gradients": {name: value.tolist() for name, value in record.gradients.items()}, "trace": record.trace, "replayed_from": start}


COMPUTE = {"landscape": _landscape, "replay": _replay}


def compute(computation_id: int, settings: Settings) -> str:
    """Compute and store computation `computation_id` unless it is gone or done; what happened, in a word."""
    sessions = session_factory(settings.database_url)
    with sessions.begin() as session:
        row = computations.start(session, computation_id)
        if row is None:
            return "nothing to do"
        kind, asked, job = row.kind, dict(row.request), session.get(Job, row.job_id)
        job_id, spec, last = job.id, job.spec, job.step
    started = time.monotonic()
    result, error = None, None
    try:
        with sessions() as session:
            run = chain_of(session, job_id, spec)  # a fork's lineage: its early steps are its parent's
            kept = kept_of(sessions, session, job_id)
        result = COMPUTE[kind](run, kept, asked, last)
    except DatasetGone as exc:
        error = {"kind": "not-recorded", "message": describe(exc)}
    except ValueError as exc:
        error = _refusal(exc)
    except Exception as exc:
        logger.exception("computation %s (%s) failed", computation_id, kind)
        error = {"kind": "internal-error", "message": describe(exc)}
    seconds = time.monotonic() - started
    with sessions.begin() as session:
        computations.finish(session, computation_id, result, error, seconds)
    return "failed" if error else f"{kind} computed in {seconds:.2f} s"
