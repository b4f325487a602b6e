"""Per-job time limits: what a submission asks for, within what the server allows.

Both count seconds of one attempt. Past the soft limit the worker stops the job at the next step
(it keeps its points; status `failed`, error `time_limit`); past the hard limit the reaper ends it
even if its worker is stuck, and Celery kills that task.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.spec import SpecError, errors_from_validation

from ..settings import Settings
from ..store.models import MAX_INT32


class TimeLimitsRequest(BaseModel):
    """`time_limits` in a job submission or sweep: seconds per attempt, at most the server's."""

    model_config = ConfigDict(extra="forbid", strict=True)
    soft_seconds: int | None = Field(default=None, ge=1, le=MAX_INT32)
    hard_seconds: int | None = Field(default=None, ge=1, le=MAX_INT32)


@dataclass(frozen=True)
class TimeLimits:
    soft: int
    hard: int


def resolve(requested: TimeLimitsRequest | dict | None, settings: Settings, field: str = "time_limits") -> TimeLimits:
    """The limits a job gets; SpecError naming the field when the request is malformed or too high."""
    if isinstance(requested, TimeLimitsRequest):
        req = requested
    elif requested is not None and not isinstance(requested, dict):
        raise SpecError([(field, "must be an object like {\"soft_seconds\": 600, \"hard_seconds\": 900}")])
    else:
        try:
            req = TimeLimitsRequest.model_validate(requested or {})
        except ValidationError as exc:
            raise SpecError(errors_from_validation(exc, prefix=field)) from None
    errors = []
    if req.soft_seconds is not None and req.soft_seconds > settings.job_soft_time_limit:
        errors.append((f"{field}.soft_seconds", f"at most {settings.job_soft_time_limit} (JOB_SOFT_TIME_LIMIT)"))
    if req.hard_seconds is not None and req.hard_seconds > settings.job_hard_time_limit:
        errors.append((f"{field}.hard_seconds", f"at most {settings.job_hard_time_limit} (JOB_HARD_TIME_LIMIT)"))
    if req.soft_seconds is not None and req.hard_seconds is not None and req.soft_seconds > req.hard_seconds:
        errors.append((f"{field}.soft_seconds", "must not exceed hard_seconds"))
    if errors:
        raise SpecError(errors)
    hard = req.hard_seconds or settings.job_hard_time_limit
    soft = req.soft_seconds or min(settings.job_soft_time_limit, hard)
    return TimeLimits(soft=soft, hard=hard)
