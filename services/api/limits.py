"""Rate limits on submissions, per owner, counted in Redis by Flask-Limiter; a breach answers 429
(problem+json) with Retry-After. If Redis is down the count falls back to this process's memory,
so submissions (kept in the outbox) still go through."""

from __future__ import annotations

from flask import Flask, current_app
from flask_limiter import Limiter

from .auth import owner

limiter = Limiter(key_func=owner)


def _submit_rate() -> str:
    return current_app.config["SETTINGS"].submit_rate_limit


submission_limit = limiter.shared_limit(_submit_rate, scope="submissions", key_func=owner)  # jobs and sweeps share it


def init_limits(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.config.setdefault("RATELIMIT_STORAGE_URI", settings.redis_url)
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1, "socket_timeout": 2})
    app.config.update(RATELIMIT_HEADERS_ENABLED=True, RATELIMIT_SWALLOW_ERRORS=True, RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
                      RATELIMIT_KEY_PREFIX=f"bplab-ratelimit:{settings.queue}")  # one count per deployment
    limiter.init_app(app)
