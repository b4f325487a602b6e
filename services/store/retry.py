"""Retry a unit of database work while the database is briefly away (a PostgreSQL restart).

Each attempt is a whole transaction that rolled back on failure, so running it again is safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

logger = logging.getLogger(__name__)
T = TypeVar("T")
TRANSIENT = (OperationalError, InterfaceError)


def retry_db(work: Callable[[], T], seconds: float, what: str = "database work") -> T:
    """`work()`, run again with backoff on connection errors for up to `seconds`; then the error."""
    deadline = time.monotonic() + seconds
    delay = 0.2
    while True:
        try:
            return work()
        except TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("%s: database unavailable (%s); retrying in %.1f s", what, type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
