"""A delivery's signature, as Stripe signs theirs: `Bplab-Signature: t=<unix seconds>,v1=<hex>` where
the hex is HMAC-SHA256 with the webhook's secret over `<t>.<body>`. A receiver recomputes it, compares
in constant time and refuses old timestamps (replays)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "Bplab-Signature"


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (our tests do it): the signature matches and is recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(signature(secret, timestamp, body), header)
