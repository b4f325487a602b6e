"""Checking a job before anything is stored or queued: the spec and its metadata (the
`JobSubmission` model, i.e. the engine's one validator), the time limits and the service's size
limits (MAX_PARAMS, MAX_STEPS, MAX_SAMPLES), and that the data can be built. A job submitted alone
and every job of a sweep pass the same checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from engine.problem import Plan, build_problem, plan
from engine.spec import SpecError, errors_from_validation
from services.job_metadata import META_FIELDS
from services.settings import Settings
from services.time_limits import TimeLimits
from services.time_limits import resolve as resolve_time_limits

from .errors import ApiError
from .schemas.jobs import JobSubmission


@dataclass
class Submission:
    spec: dict[str, Any]  # the document as submitted (without the metadata)
    parsed: JobSubmission
    plan: Plan
    time_limits: TimeLimits


def invalid(errors: list[tuple[str, str]], kind: str = "invalid-spec") -> ApiError:
    return ApiError(kind, "; ".join(f"{f}: {r}" if f else r for f, r in errors), field=errors[0][0],
                    errors=[{"field": f, "reason": r} for f, r in errors])


def check_document(document: dict[str, Any], settings: Settings) -> Submission:
    """A submission from a raw document (a sweep's point), validated here."""
    try:
        parsed = JobSubmission.model_validate(document)
    except ValidationError as exc:
        raise invalid(errors_from_validation(exc)) from None
    return check_submission(document, parsed, settings)


def check_submission(document: dict[str, Any], parsed: JobSubmission, settings: Settings) -> Submission:
    """The submission whose body `parsed` already passed the model: the server's limits, and the data."""
    try:
        limits = resolve_time_limits(parsed.time_limits, settings)
    except SpecError as exc:
        raise invalid(exc.errors) from None
    sizes = plan(parsed)
    _check_size_limits(parsed, sizes, settings)
    try:
        build_problem(parsed)
    except SpecError as exc:
        raise invalid(exc.errors) from None
    spec = {k: v for k, v in document.items() if k not in META_FIELDS}
    return Submission(spec=spec, parsed=parsed, plan=sizes, time_limits=limits)


def _check_size_limits(spec: JobSubmission, sizes: Plan, settings: Settings) -> None:
    checks = [
        ("model.layers", sizes.n_params, settings.max_params, "MAX_PARAMS", "parameters"),
        ("steps" if spec.steps is not None else "epochs", sizes.total_steps, settings.max_steps, "MAX_STEPS", "optimizer steps"),
        ("data.n_samples" if spec.data.builtin else "data.X", sizes.n_samples, settings.max_samples, "MAX_SAMPLES", "samples"),
    ]
    for field, value, limit, name, what in checks:
        if value > limit:
            raise ApiError("over-limit", f"{field}: the job has {value:,} {what}, over the limit of {limit:,} ({name})",
                           field=field, errors=[{"field": field, "reason": f"over {name}={limit}"}],
                           limit={"name": name, "value": limit, "requested": value})
