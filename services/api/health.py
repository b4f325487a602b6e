"""/healthz: the API is up and can reach its database."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import text

from .store import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def health():
    db().execute(text("SELECT 1"))
    return {"status": "ok", "database": "ok"}
