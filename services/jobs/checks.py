"""The checks every job passes before it exists, whoever creates it: a submission to the API, each
point of a sweep when the sweep is submitted, and each point a sampler proposes later. The spec and
its metadata (`JobSubmission`: the engine's validator plus the metadata rules), the time limits, the
server's limits (parameters, steps, samples, recorded bytes, metric keys, the owner's storage), and
that the data fits the network. Raises `SpecError` (a rule broken) or `OverLimit` (a valid job the
server will not run); the API turns them into 422 problems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from engine.problem import Plan, RawData, build_problem, plan, recording_bytes
from engine.recording import metric_keys
from engine.spec import JobSpec, SpecError, errors_from_validation

from ..settings import Settings
from ..store import quota
from .metadata import META_FIELDS, JobSubmission
from .time_limits import TimeLimits
from .time_limits import resolve as resolve_time_limits


class OverLimit(Exception):
    """A valid job over one of the server's limits: `field` asks for `requested`, the setting `name` allows `value`."""

    def __init__(self, field: str, name: str, value: int, requested: int, what: str) -> None:
        self.field, self.name, self.value, self.requested = field, name, value, requested
        super().__init__(f"{field}: the job has {requested:,} {what}, over the limit of {value:,} ({name})")


@dataclass
class Checked:
    spec: dict[str, Any]  # the document as submitted, without the metadata
    parsed: JobSubmission
    plan: Plan
    time_limits: TimeLimits
    record_bytes: int  # what recording will store at most (metric points, gradients, traces)


def parse_document(document: dict[str, Any]) -> JobSubmission:
    try:
        return JobSubmission.model_validate(document)
    except ValidationError as exc:
        raise SpecError(errors_from_validation(exc)) from None


def check_job(document: dict[str, Any], settings: Settings, *, parsed: JobSubmission | None = None,
              raw: RawData | None = None) -> Checked:
    """Every check of a job but the owner's quota (`reserve`, when it is created). `parsed`: the document
    already through the model; `raw`: its data already loaded (a sweep's points share one load)."""
    parsed = parsed if parsed is not None else parse_document(document)
    limits = resolve_time_limits(parsed.time_limits, settings)
    sizes = plan(parsed)
    budget = check_limits(parsed, sizes, settings)
    build_problem(parsed, raw)  # the data against the network; record.max_bytes against `budget`
    spec = {k: v for k, v in document.items() if k not in META_FIELDS}
    return Checked(spec=spec, parsed=parsed, plan=sizes, time_limits=limits, record_bytes=budget)


def check_limits(spec: JobSpec, sizes: Plan, settings: Settings) -> int:
    """The server's limits on one job; what it may record, in bytes."""
    steps_field = "steps" if spec.steps is not None else "epochs"
    checks = [
        ("model.layers", sizes.n_params, settings.max_params, "MAX_PARAMS", "parameters"),
        (steps_field, sizes.total_steps, settings.max_steps, "MAX_STEPS", "optimizer steps"),
        ("data.n_samples" if spec.data.builtin else "data.X", sizes.n_samples, settings.max_samples, "MAX_SAMPLES", "samples"),
        ("record.max_bytes", spec.record.max_bytes, settings.max_record_bytes, "MAX_RECORD_BYTES", "bytes of recording budget"),
        ("model.layers", len(metric_keys(spec, sizes.n_params)), settings.max_metric_keys, "MAX_METRIC_KEYS", "metric keys"),
    ]
    for field, value, limit, name, what in checks:
        if value > limit:
            raise OverLimit(field, name, limit, value, what)
    return recording_bytes(spec, sizes.n_inputs, sizes.batch_size, sizes.total_steps, sizes.steps_per_epoch)


def check_quota(session: Session, owner: str, needed: int, settings: Settings) -> None:
    """Whether `needed` more bytes fit in the owner's quota (MAX_OWNER_BYTES), reserving nothing."""
    used = quota.usage(session, owner)
    if used + needed > settings.max_owner_bytes:
        raise _over_quota(used + needed, settings)


def reserve(session: Session, owner: str, needed: int, settings: Settings) -> None:
    """Reserve `needed` bytes of the owner's quota in the caller's transaction (the job's creation), or OverLimit."""
    if not quota.reserve(session, owner, needed, settings.max_owner_bytes):
        raise _over_quota(quota.usage(session, owner) + needed, settings)


def _over_quota(requested: int, settings: Settings) -> OverLimit:
    return OverLimit("record", "MAX_OWNER_BYTES", settings.max_owner_bytes, requested,
                     "bytes reserved by this owner's jobs with this one (record less: `record.every`)")
