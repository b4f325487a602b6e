"""Checking a submitted job before anything is stored or queued: the spec (through the engine's
one validator), the service's size limits (MAX_PARAMS, MAX_STEPS, MAX_SAMPLES), and the job's metadata."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.problem import Plan, build_problem, plan
from engine.spec import JobSpec, SpecError, parse_spec
from services.settings import Settings
from services.time_limits import TimeLimits
from services.time_limits import resolve as resolve_time_limits

from .errors import ApiError

META_FIELDS = ("name", "experiment", "tags", "time_limits")
NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")  # printable, 1-200 characters


@dataclass
class Submission:
    spec: dict[str, Any]  # the document as submitted (without the metadata)
    parsed: JobSpec
    plan: Plan
    name: str | None
    experiment: str
    tags: dict[str, str]
    time_limits: TimeLimits


def invalid(errors: list[tuple[str, str]], title: str = "Invalid job spec") -> ApiError:
    return ApiError(422, title, "; ".join(f"{f}: {r}" if f else r for f, r in errors), kind="invalid-spec",
                    field=errors[0][0], errors=[{"field": f, "reason": r} for f, r in errors])


def check_submission(body: Any, settings: Settings) -> Submission:
    """The submission, or an ApiError naming the first offending field."""
    if not isinstance(body, dict):
        raise ApiError(400, "Bad request", "the body must be a JSON object: a job spec plus optional name, experiment, tags, "
                       "time_limits", kind="bad-request")
    spec = {k: v for k, v in body.items() if k not in META_FIELDS}
    name, experiment, tags = _meta(body)
    try:
        limits = resolve_time_limits(body.get("time_limits"), settings)
    except SpecError as exc:
        raise invalid(exc.errors, "Invalid job metadata") from None
    try:
        parsed = parse_spec(spec)
    except SpecError as exc:
        raise invalid(exc.errors) from None
    sizes = plan(parsed)
    _check_size_limits(parsed, sizes, settings)
    try:
        build_problem(parsed)
    except SpecError as exc:
        raise invalid(exc.errors) from None
    return Submission(spec=spec, parsed=parsed, plan=sizes, name=name, experiment=experiment, tags=tags, time_limits=limits)


def _meta(body: dict[str, Any]) -> tuple[str | None, str, dict[str, str]]:
    errors = []
    name, experiment, tags = body.get("name"), body.get("experiment", "default"), body.get("tags", {})
    if name is not None and not (isinstance(name, str) and NAME_RE.match(name)):
        errors.append(("name", "must be 1-200 printable characters"))
    if not (isinstance(experiment, str) and NAME_RE.match(experiment)):
        errors.append(("experiment", "must be 1-200 printable characters"))
    if not isinstance(tags, dict) or len(tags) > 50:
        errors.append(("tags", "must be an object of at most 50 string tags, e.g. {\"team\": \"vision\"}"))
    else:
        for key, value in tags.items():
            if not (isinstance(key, str) and 0 < len(key) <= 250 and isinstance(value, str) and len(value) <= 500):
                errors.append((f"tags.{key}", "tag keys are 1-250 characters and values strings of at most 500"))
    if errors:
        raise invalid(errors, "Invalid job metadata")
    return name, experiment, dict(tags)


def _check_size_limits(spec: JobSpec, sizes: Plan, settings: Settings) -> None:
    checks = [
        ("model.layers", sizes.n_params, settings.max_params, "MAX_PARAMS", "parameters"),
        ("steps" if spec.steps is not None else "epochs", sizes.total_steps, settings.max_steps, "MAX_STEPS", "optimizer steps"),
        ("data.n_samples" if spec.data.builtin else "data.X", sizes.n_samples, settings.max_samples, "MAX_SAMPLES", "samples"),
    ]
    for field, value, limit, name, what in checks:
        if value > limit:
            raise ApiError(422, "Over a limit", f"{field}: the job has {value:,} {what}, over the limit of {limit:,} ({name})",
                           kind="over-limit", field=field, errors=[{"field": field, "reason": f"over {name}={limit}"}],
                           limit={"name": name, "value": limit, "requested": value})
