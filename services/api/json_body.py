"""The JSON body of a request, read once before validation: 415 unless it is JSON, 400 unless it
parses into an object nested at most `MAX_DEPTH` levels (deeper is no request of ours, and would
only cost the parser and validator stack and time)."""

from __future__ import annotations

import numpy as np
from flask import Flask, request
from werkzeug.exceptions import BadRequest

from .errors import ApiError
from .openapi import api

MAX_DEPTH = 64
_OPEN, _CLOSE = np.frombuffer(b"[{", dtype=np.uint8), np.frombuffer(b"]}", dtype=np.uint8)


def _bracket_depth(raw: bytes) -> int:
    """An upper bound of the nesting depth (brackets inside strings count too), in one vectorised pass."""
    data = np.frombuffer(raw, dtype=np.uint8)
    steps = np.isin(data, _OPEN).astype(np.int32) - np.isin(data, _CLOSE).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def _depth(value: object) -> int:
    """The exact nesting depth of parsed JSON, walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json_object() -> dict:
    if not request.is_json:
        raise ApiError("unsupported-media-type", f"send the body as JSON with Content-Type: application/json (got {request.mimetype or 'none'})")
    raw = request.get_data(cache=True)
    suspicious = _bracket_depth(raw) > MAX_DEPTH
    try:
        body = request.get_json()
    except BadRequest:
        raise ApiError("bad-request", "the body is not valid JSON") from None
    except RecursionError:
        raise ApiError("bad-request", f"the body is nested more than {MAX_DEPTH} levels deep") from None
    if suspicious and _depth(body) > MAX_DEPTH:
        raise ApiError("bad-request", f"the body is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(body, dict):
        raise ApiError("bad-request", "the body must be a JSON object")
    return body


def init_json_bodies(app: Flask) -> None:
    """Check the body of every operation that declares one, before spectree validates it."""

    @app.before_request
    def _check_body() -> None:
        view = app.view_functions.get(request.endpoint or "")
        metadata = api.get_function_metadata(view) if view is not None else None
        if metadata is not None and metadata.json is not None:
            read_json_object()
