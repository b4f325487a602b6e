"""Typed errors for API problems (RFC 9457): catch at the level you care about."""

from __future__ import annotations

from typing import Any


class BplabError(Exception):
    """Anything that went wrong talking to the service."""


class ConnectionFailed(BplabError):
    """The service could not be reached (after retries)."""


class ApiError(BplabError):
    """The service answered with a problem; its fields are attributes."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = problem.get("type")
        self.title = problem.get("title", "")
        self.detail = problem.get("detail", "")
        self.field = problem.get("field")
        self.errors = problem.get("errors") or []
        super().__init__(f"{status} {self.title}: {self.detail}")


class BadRequest(ApiError):
    """400 / 413: the request itself was malformed or too large."""


class Unauthorized(ApiError):
    """401: no token, or an unknown or revoked one (set BPLAB_TOKEN or pass token=)."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409: e.g. cancelling a job that already ended, a model that is not there yet."""


class ValidationFailed(ApiError):
    """422: an invalid spec or sweep, or over a limit; `field` names the offending input."""


class RateLimited(ApiError):
    """429; `retry_after`: seconds to wait (from the Retry-After header)."""

    @property
    def retry_after(self) -> float | None:
        value = self.problem.get("retry_after")
        return float(value) if value is not None else None


class ServerError(ApiError):
    """5xx."""


def error_for(status: int, problem: dict[str, Any]) -> ApiError:
    cls = {400: BadRequest, 413: BadRequest, 401: Unauthorized, 404: NotFound, 409: Conflict, 422: ValidationFailed, 429: RateLimited}.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls(status, problem)
