"""One error type and one formatter: every error leaves as RFC 9457 `application/problem+json`.

`ApiError(kind, detail, ...)` takes its status and title from the table in `problems`; its `type`
is the URL of that kind's entry on this service's /docs/problems page. Validation errors carry the
offending field (`field`, and `errors` with one entry per field); Werkzeug's HTTP errors keep their
status; a database that is down answers 503; anything else is logged and answered with a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, json, request, url_for
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from .problems import BY_STATUS, PROBLEMS

logger = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class ApiError(Exception):
    """A problem of one of the kinds in `problems.PROBLEMS`, with a detail and optionally the offending field(s)."""

    def __init__(self, kind: str, detail: str, *, field: str | None = None, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail
        self.status = PROBLEMS[kind].status
        self.field, self.errors, self.headers, self.extra = field, errors, headers or {}, extra


def problem_type(kind: str) -> str:
    return url_for("docs.problems", _external=True) + "#" + kind if kind in PROBLEMS else "about:blank"


def problem(status: int, kind: str, detail: str, headers: dict[str, str] | None = None, title: str | None = None,
            **members: Any) -> Response:
    known = PROBLEMS.get(kind)
    body = {"type": problem_type(kind), "title": known.title if known else (title or "Error"), "status": status,
            "detail": detail, "instance": request.path}
    body.update({k: v for k, v in members.items() if v is not None})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    response.headers.update(headers or {})
    return response


def _exists(methods: list[str]) -> bool:
    """Whether the request's path names a resource under some method (a rule whose converters accept it)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in methods:
        if method in ("HEAD", "OPTIONS"):
            continue
        try:
            adapter.match(request.path, method=method)
            return True
        except HTTPException:
            continue
    return False


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return problem(exc.status, exc.kind, exc.detail, exc.headers, field=exc.field, errors=exc.errors, **exc.extra)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return problem(413, "request-too-large", f"the request body is over the limit of {limit} bytes (MAX_REQUEST_BYTES)",
                       limit={"name": "MAX_REQUEST_BYTES", "value": limit})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if isinstance(exc, MethodNotAllowed) and not _exists(exc.valid_methods or []):
            # /jobs/0 names nothing under any method: werkzeug's 405 only says another method's rule has that shape
            exc = NotFound()
        code = exc.code or 500
        headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else {}
        headers.update(getattr(exc, "retry_headers", None) or {})
        return problem(code, BY_STATUS.get(code, ""), exc.description or exc.name, headers, title=exc.name)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_down(exc: Exception):
        logger.warning("database unavailable: %s", exc)
        return problem(503, "database-unavailable", "the database is unavailable; retry shortly", {"Retry-After": "2"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "internal-error", "an unexpected error occurred; it has been logged")
