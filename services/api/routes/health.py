"""/healthz (the API process answers and reaches its database) and /readyz (it can do its work:
the database at the newest migration and the broker answer; MLflow's state is reported, never a
reason to be unready, since training does not wait for it)."""

from __future__ import annotations

import httpx
import redis
from flask import Blueprint, current_app
from sqlalchemy import text

from services.migrate import current_revision, head_revision
from services.store import mirror_cursor, outbox

from ..auth import signed_in
from ..openapi import operation
from ..request_session import db
from ..schemas.common import NoQuery
from ..schemas.health import Check, Health, MirrorBacklog, Readiness

bp = Blueprint("health", __name__)
TIMEOUT_SECONDS = 1.0


@bp.get("/healthz")
@operation("health", ok=Health, query=NoQuery, public=True, problems=("database-unavailable",))
def health():
    """Liveness: the API answers and its database does."""
    db().execute(text("SELECT 1"))
    return Health(status="ok")


def _database() -> tuple[Check, Check]:
    try:
        revision = current_revision(db().connection())
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        db().rollback()
        return Check(ok=False, detail=f"unreachable: {type(exc).__name__}"), Check(ok=False, detail="unknown")
    head = head_revision()
    migrations = Check(ok=revision == head, detail=f"at {revision or 'nothing'}" + ("" if revision == head else f", newest is {head}"))
    return Check(ok=True, detail="reachable"), migrations


def _outbox() -> int | None:
    try:
        return outbox.pending(db())
    except Exception:  # noqa: BLE001 - the database went away since it answered: no figure
        db().rollback()
        return None


def _mlflow_backlog() -> MirrorBacklog | None:
    try:
        runs, series, points = mirror_cursor.backlog(db())
    except Exception:  # noqa: BLE001 - as _outbox
        db().rollback()
        return None
    return MirrorBacklog(runs=runs, series=series, points=points)


def _broker(url: str) -> Check:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS).ping()
    except redis.RedisError as exc:
        return Check(ok=False, detail=f"unreachable: {type(exc).__name__}")
    return Check(ok=True, detail="answers")


def _mlflow(uri: str) -> Check:
    if not uri:
        return Check(ok=True, detail="off (MLFLOW_TRACKING_URI is empty)")
    if not uri.startswith(("http://", "https://")):
        return Check(ok=True, detail="a local store")
    try:
        answer = httpx.get(uri.rstrip("/") + "/health", timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return Check(ok=False, detail=f"unreachable: {type(exc).__name__}; runs catch up when it is back")
    return Check(ok=answer.status_code == 200, detail=f"answers {answer.status_code}")


@bp.get("/readyz")
@operation("health", ok=Readiness, query=NoQuery, public=True, also={503: (Readiness, "Not ready: see which check failed")})
def ready():
    """Readiness: 200 when the database is reachable at the newest migration and the broker answers (503 otherwise);
    with AUTH=on only a caller with a token sees which check failed."""
    settings = current_app.config["SETTINGS"]
    database, migrations = _database()
    broker = _broker(settings.redis_url)
    ready = database.ok and migrations.ok and broker.ok
    if settings.auth == "on" and not signed_in():  # anonymous: ready or not, nothing of the revision, broker or MLflow
        body = Readiness(ready=ready)
    else:
        body = Readiness(ready=ready, database=database, migrations=migrations, broker=broker, mlflow=_mlflow(settings.mlflow_tracking_uri),
                         outbox=_outbox() if migrations.ok and settings.auth == "off" else None,
                         mlflow_backlog=_mlflow_backlog() if migrations.ok and settings.auth == "off" and settings.mlflow_tracking_uri else None)
    return (body, 200) if body.ready else (body, 503, {"Retry-After": "5"})
