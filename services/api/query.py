"""Query-string parameters as the routes read them: integers within the 32-bit columns they query,
and 400 problem+json naming the parameter otherwise."""

from __future__ import annotations

from flask import request

from services.store.models import MAX_INT32

from .errors import ApiError


def int_arg(name: str, default: int | None = None, minimum: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "Bad request", f"{name}: must be an integer, got {raw!r}", kind="bad-query", field=name) from None
    if minimum is not None and value < minimum:
        raise ApiError(400, "Bad request", f"{name}: must be at least {minimum}, got {value}", kind="bad-query", field=name)
    if abs(value) > MAX_INT32:
        raise ApiError(400, "Bad request", f"{name}: must be between -{MAX_INT32} and {MAX_INT32}, got {value}",
                       kind="bad-query", field=name)
    return value


def json_body() -> object:
    """The request's JSON body; 400 when it is missing or not JSON."""
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "Bad request", "the body must be JSON (Content-Type: application/json)", kind="bad-request")
    return body


def wants(*mimetypes: str) -> str:
    """The best of `mimetypes` for the request's Accept header (the first when it accepts anything)."""
    return request.accept_mimetypes.best_match(list(mimetypes)) or mimetypes[0]
