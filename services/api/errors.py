"""One error type and one formatter: every error leaves as RFC 9457 `application/problem+json`.

Validation errors carry the offending field (`field`, and `errors` with one entry per field);
Werkzeug's HTTP errors keep their status; a database that is down answers 503; anything else is
logged and answered with a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

logger = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
TYPE_BASE = "https://backprop-lab.dev/problems/"


class ApiError(Exception):
    """An error with an HTTP status, a short title, a detail, and optionally the offending field(s)."""

    def __init__(self, status: int, title: str, detail: str, *, kind: str | None = None, field: str | None = None,
                 errors: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.field, self.errors, self.headers, self.extra = field, errors, headers or {}, extra


def problem(status: int, title: str, detail: str, kind: str, headers: dict[str, str] | None = None, **members: Any) -> Response:
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, "instance": request.path}
    body.update({k: v for k, v in members.items() if v is not None})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return problem(exc.status, exc.title, exc.detail, exc.kind, exc.headers, field=exc.field, errors=exc.errors, **exc.extra)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return problem(413, "Request too large", f"the request body is over the limit of {limit} bytes (MAX_REQUEST_BYTES)",
                       "request-too-large", limit={"name": "MAX_REQUEST_BYTES", "value": limit})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        headers = {"Allow": exc.valid_methods and ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        return problem(exc.code or 500, exc.name, exc.description or exc.name, exc.name.lower().replace(" ", "-"), headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_down(exc: Exception):
        logger.warning("database unavailable: %s", exc)
        return problem(503, "Service unavailable", "the database is unavailable; retry shortly", "database-unavailable",
                       {"Retry-After": "2"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal server error", "an unexpected error occurred; it has been logged", "internal-error")
