"""Sends webhook deliveries from the store's outbox (the maintenance worker's periodic task; training
never waits on a receiver): each due delivery POSTed as signed JSON to a host the operator allows,
no redirect followed, time and answer size bounded; retried with doubling waits until
WEBHOOK_MAX_ATTEMPTS, each attempt logged on the delivery."""

from __future__ import annotations

import json
import logging
import time

import httpx
from sqlalchemy.orm import Session, sessionmaker

from services.settings import Settings
from services.store import webhooks
from services.store.columns import db_now
from services.store.db import session_factory
from services.webhooks.hosts import HostRefused, check_addresses
from services.webhooks.signing import HEADER, signature

logger = logging.getLogger(__name__)
BATCH = 50  # deliveries a pass sends at most
PASS_SECONDS = 30.0  # a pass starts no delivery after this long: dead receivers cannot hold the reaper (same worker) back for minutes
MAX_ANSWER_BYTES = 64 * 1024  # what is read of a receiver's answer (its status is what counts)


def deliver_due(settings: Settings, sessions: sessionmaker[Session] | None = None) -> dict[str, int]:
    """One pass: send the due deliveries; how many ended delivered, pending (to retry) and failed."""
    sessions = sessions or session_factory(settings.database_url)
    with sessions() as session:
        due = [(d.id, d.event, d.payload, w.url, w.secret) for d, w in webhooks.due(session, db_now(session), BATCH)]
    counts = {"delivered": 0, "pending": 0, "failed": 0}
    started = time.monotonic()
    with httpx.Client(follow_redirects=False, timeout=settings.webhook_timeout_seconds) as http:
        for delivery_id, event, payload, url, secret in due:
            if time.monotonic() - started > PASS_SECONDS:  # the rest stay due for the next pass
                break
            status, error = send(http, url, secret, delivery_id, event, payload, settings)
            with sessions.begin() as session:
                state = webhooks.attempted(session, delivery_id, status, error, settings.webhook_max_attempts, settings.webhook_retry_seconds)
            counts[state] += 1
            if state != "delivered":
                logger.warning("webhook delivery %s (%s) to %s: %s", delivery_id, event, url, error or status)
    return counts


def send(http: httpx.Client, url: str, secret: str, delivery_id: int, event: str, payload: dict, settings: Settings) -> tuple[int | None, str | None]:
    """(the receiver's status, or None with why it was not reached)."""
    try:
        check_addresses(url, settings.webhook_allowed_hosts)  # at each attempt: the operator's list, and where the name points now
    except HostRefused as exc:
        return None, f"refused: {exc}"
    body = json.dumps({"id": delivery_id, **payload}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "bplab-webhooks/1", "Bplab-Event": event,
               "Bplab-Delivery": str(delivery_id), HEADER: signature(secret, int(time.time()), body)}
    started = time.monotonic()  # httpx bounds each read; this bounds the whole answer (a receiver trickling bytes)
    try:
        with http.stream("POST", url, content=body, headers=headers) as answer:
            read = 0
            for chunk in answer.iter_bytes():
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES or time.monotonic() - started > settings.webhook_timeout_seconds:
                    break
            if 300 <= answer.status_code < 400:
                return answer.status_code, f"answered {answer.status_code} (a redirect: not followed)"
            return answer.status_code, None if answer.is_success else f"answered {answer.status_code}"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
