"""Rate limits on submissions, per owner, counted in Redis by Flask-Limiter; a breach answers 429
(problem+json) with Retry-After, and no other answer carries it. If Redis is down the count falls
back to this process's memory, so submissions (kept in the outbox) still go through. Each app has
its own limiter."""

from __future__ import annotations

import math
import time

from flask import Flask
from flask_limiter import Limiter, RateLimitExceeded

from .auth import owner
from .errors import problem

# The views that count as submissions; jobs and sweeps share one budget per owner.
SUBMISSIONS = ("jobs.submit_job", "jobs.clone_job", "sweeps.create_sweep")


def init_limits(app: Flask) -> None:
    """Give the app its limiter and put the submission limit on the submitting views (registered before)."""
    settings = app.config["SETTINGS"]
    app.config.setdefault("RATELIMIT_STORAGE_URI", settings.redis_url)
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1, "socket_timeout": 2})
    app.config.update(RATELIMIT_HEADERS_ENABLED=False, RATELIMIT_SWALLOW_ERRORS=True, RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
                      RATELIMIT_KEY_PREFIX=f"bplab-ratelimit:{settings.bplab_queue}")  # one count per deployment
    limiter = Limiter(key_func=owner, app=app)
    limit = limiter.shared_limit(settings.submit_rate_limit, scope="submissions", key_func=owner)
    for endpoint in SUBMISSIONS:
        app.view_functions[endpoint] = limit(app.view_functions[endpoint])

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        current = limiter.current_limit
        window = exc.limit.limit.get_expiry()
        wait = min(window, max(1, math.ceil(current.reset_at - time.time()))) if current is not None else window
        return problem(429, "too-many-requests", f"over the submission limit of {exc.limit.limit} per owner (SUBMIT_RATE_LIMIT); "
                       f"retry in {wait} s", {"Retry-After": str(wait)},
                       limit={"name": "SUBMIT_RATE_LIMIT", "value": str(exc.limit.limit)})
