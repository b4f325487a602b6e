"""Webhooks: what an owner registers, what the API shows of them and of their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from services.store.webhooks import EVENTS

from .common import Body, Out

WebhookEvent = Literal[EVENTS]  # type: ignore[valid-type]


class WebhookRequest(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"url": "https://hooks.example.com/bplab",
                                                               "events": ["dead_units", "layer_dead", "job.ended"]}]})

    url: str = Field(min_length=1, max_length=2000, description="an http(s) URL on a host the server allows (WEBHOOK_ALLOWED_HOSTS)")
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(EVENTS),
                                       description="diagnosis kinds (`dead_units`, `loss_rising`, ...), `job.ended`, `sweep.ended`")


class Webhook(Out):
    id: int
    url: str
    events: list[str]
    created_at: datetime
    links: dict[str, str]


class NewWebhook(Webhook):
    secret: str = Field(description="signs every delivery (`Bplab-Signature: t=…,v1=HMAC-SHA256(secret, t.body)`); shown only now")


class WebhookList(Out):
    webhooks: list[Webhook]


class Delivery(Out):
    id: int
    event: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None = Field(description="the receiver's last answer's status; null when it was not reached")
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when a pending delivery is tried again")
    payload: dict[str, Any] = Field(description="the JSON body sent (with the delivery's `id`)")


class DeliveryList(Out):
    webhook_id: int
    deliveries: list[Delivery] = Field(description="newest first, at most 200")
