"""/healthz: the API is up and can reach its database; how many jobs wait in the outbox."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import text

from services.store import outbox

from ..request_session import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def health():
    db().execute(text("SELECT 1"))
    # outbox: queued jobs no worker has claimed yet (those not yet handed to the broker among them)
    return {"status": "ok", "database": "ok", "outbox": outbox.pending(db())}
