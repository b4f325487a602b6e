"""/api/v1/webhooks: an owner's webhooks (register, list, delete) and each one's delivery log. The
deliveries are sent by the maintenance worker (worker/webhooks.py), never by a request or a training task."""

from __future__ import annotations

from flask import Blueprint, current_app, request, url_for

from services.store import webhooks
from services.store.models import MAX_INT32
from services.store.models import Webhook as WebhookRow
from services.webhooks.hosts import HostRefused, check_url
from services.webhooks.signing import new_secret

from ..auth import owner
from ..errors import ApiError
from ..openapi import operation
from ..request_session import db, transaction
from ..schemas.common import NoQuery
from ..schemas.webhooks import Delivery, DeliveryList, NewWebhook, Webhook, WebhookList, WebhookRequest

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks")
WEBHOOK_ID = "<int(min=1, max=2147483647):webhook_id>"


def _model(row: WebhookRow) -> dict:
    return dict(id=row.id, url=row.url, events=row.events, created_at=row.created_at,
                links={"self": url_for("webhooks.delete_webhook", webhook_id=row.id),
                       "deliveries": url_for("webhooks.get_deliveries", webhook_id=row.id)})


def _webhook_or_404(webhook_id: int) -> WebhookRow:
    row = webhooks.get(db(), owner(), webhook_id) if webhook_id <= MAX_INT32 else None
    if row is None:
        raise ApiError("not-found", f"no webhook {webhook_id}")
    return row


@bp.post("")
@operation("webhooks", ok=NewWebhook, status=201, body=WebhookRequest, query=NoQuery, problems=())
def create_webhook():
    """Register a webhook: the events it wants (diagnosis kinds, `job.ended`, `sweep.ended`) POSTed to `url` as
    signed JSON. The answer holds its `secret`, shown only once."""
    body: WebhookRequest = request.context.json
    try:
        check_url(body.url, current_app.config["SETTINGS"].webhook_allowed_hosts)
    except HostRefused as exc:
        raise ApiError("invalid-input", str(exc), field="url") from None
    secret = new_secret()
    with transaction() as session:
        row = webhooks.create(session, owner(), body.url, list(body.events), secret)
        answer = NewWebhook(**_model(row), secret=secret)
    return answer, 201, {"Location": answer.links["self"]}


@bp.get("")
@operation("webhooks", ok=WebhookList, query=NoQuery)
def list_webhooks():
    """The owner's webhooks (without their secrets)."""
    return WebhookList(webhooks=[Webhook(**_model(row)) for row in webhooks.of_owner(db(), owner())])


@bp.delete(f"/{WEBHOOK_ID}")
@operation("webhooks", ok=None, status=204, query=NoQuery, problems=("not-found",))
def delete_webhook(webhook_id: int):
    """Stop a webhook: nothing more is sent to it, its pending deliveries and log go with it."""
    row = _webhook_or_404(webhook_id)
    with transaction() as session:
        session.delete(row)
    return "", 204


@bp.get(f"/{WEBHOOK_ID}/deliveries")
@operation("webhooks", ok=DeliveryList, query=NoQuery, problems=("not-found",))
def get_deliveries(webhook_id: int):
    """What was sent to the webhook, newest first: each delivery's event, state, attempts, last answer or error."""
    _webhook_or_404(webhook_id)
    rows = webhooks.deliveries(db(), webhook_id)
    return DeliveryList(webhook_id=webhook_id, deliveries=[Delivery(
        id=d.id, event=d.event, state=d.state, attempts=d.attempts, last_status=d.last_status, last_error=d.last_error,
        created_at=d.created_at, delivered_at=d.delivered_at, next_attempt_at=d.next_attempt_at if d.state == "pending" else None,
        payload={"id": d.id, **d.payload}) for d in rows])
