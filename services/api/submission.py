"""A job's checks (`services.job_checks`, the same for a job submitted alone and every job of a
sweep) as the API answers them: a broken rule is a 422 naming each field, a limit a 422 naming it
with the limit, what was asked and how much is allowed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.problem import RawData
from engine.spec import SpecError
from services.job_checks import Checked, OverLimit, check_job
from services.job_metadata import JobSubmission
from services.settings import Settings
from services.store import jobs

from .errors import ApiError


def invalid(errors: list[tuple[str, str]], kind: str = "invalid-spec") -> ApiError:
    return ApiError(kind, "; ".join(f"{f}: {r}" if f else r for f, r in errors), field=errors[0][0],
                    errors=[{"field": f, "reason": r} for f, r in errors])


def over_limit(exc: OverLimit) -> ApiError:
    return ApiError("over-limit", str(exc), field=exc.field, errors=[{"field": exc.field, "reason": f"over {exc.name}={exc.value}"}],
                    limit={"name": exc.name, "value": exc.value, "requested": exc.requested})


def check(document: dict[str, Any], settings: Settings, *, parsed: JobSubmission | None = None, raw: RawData | None = None,
          session: Session | None = None, owner: str | None = None) -> Checked:
    """`check_job` with its failures as problems; with `session` and `owner`, the owner's quota too."""
    owner_bytes = None if session is None else (lambda: jobs.reserved_bytes(session, owner))
    try:
        return check_job(document, settings, parsed=parsed, raw=raw, owner_bytes=owner_bytes)
    except SpecError as exc:
        raise invalid(exc.errors) from None
    except OverLimit as exc:
        raise over_limit(exc) from None
