"""A job's checks (`services.jobs.checks`, the same for a job submitted alone and every job of a
sweep) as the API answers them: a broken rule is a 422 naming each field, a limit a 422 naming it
with the limit, what was asked and how much is allowed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.problem import RawData
from engine.spec import SpecError, parse_spec
from services.datasets import use as datasets_use
from services.jobs.checks import Checked, OverLimit, check_job, reserve
from services.jobs.metadata import META_FIELDS, JobSubmission
from services.settings import Settings

from .errors import ApiError


def invalid(errors: list[tuple[str, str]], kind: str = "invalid-spec") -> ApiError:
    return ApiError(kind, "; ".join(f"{f}: {r}" if f else r for f, r in errors), field=errors[0][0],
                    errors=[{"field": f, "reason": r} for f, r in errors])


def over_limit(exc: OverLimit) -> ApiError:
    return ApiError("over-limit", str(exc), field=exc.field, errors=[{"field": exc.field, "reason": f"over {exc.name}={exc.value}"}],
                    limit={"name": exc.name, "value": exc.value, "requested": exc.requested})


def check(document: dict[str, Any], settings: Settings, *, parsed: JobSubmission | None = None, raw: RawData | None = None) -> Checked:
    """`check_job` with its failures as problems."""
    try:
        return check_job(document, settings, parsed=parsed, raw=raw)
    except SpecError as exc:
        raise invalid(exc.errors) from None
    except OverLimit as exc:
        raise over_limit(exc) from None


def reserve_quota(session: Session, owner: str, needed: int, settings: Settings) -> None:
    """The job's reservation in the owner's quota, in the transaction that creates it; 422 if it does not fit."""
    try:
        reserve(session, owner, needed, settings)
    except OverLimit as exc:
        raise over_limit(exc) from None


def resolved(document: dict[str, Any], kind: str = "invalid-spec") -> dict[str, Any]:
    """The document with its uploaded dataset's reference completed (services/datasets/use.py), or a 422 naming the field."""
    from .auth import owner
    from .request_session import db

    try:
        return datasets_use.resolve(db(), owner(), document)
    except SpecError as exc:
        raise invalid(exc.errors, kind) from None


def dataset_rows(document: dict[str, Any]) -> RawData | None:
    """A dataset job's rows (read once per process), for the checks of the data against the network."""
    data = document.get("data")
    if not isinstance(data, dict) or data.get("dataset") is None or data.get("digest") is None:
        return None
    from .request_session import db

    try:
        return datasets_use.raw_data(db(), parse_spec({k: v for k, v in document.items() if k not in META_FIELDS}))
    except SpecError as exc:
        raise invalid(exc.errors) from None
