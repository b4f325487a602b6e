"""Content negotiation: which representation of a resource the request's Accept header prefers."""

from __future__ import annotations

from flask import request


def wants(*mimetypes: str) -> str:
    """The best of `mimetypes` for the request's Accept header (the first when it accepts anything)."""
    return request.accept_mimetypes.best_match(list(mimetypes)) or mimetypes[0]
