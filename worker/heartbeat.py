"""Telling the store a worker is alive, independent of how long a step takes.

The reaper requeues a running job whose heartbeat is older than HEARTBEAT_TIMEOUT: its worker was
killed, lost its machine, or hangs. One thread per worker process beats for every job the process
trains; a job is registered while it trains (`beating(...)`, a context manager), so starting and
ending a job costs no thread of its own. (Claiming a job and every flush of its points count as
beats too, so a job shorter than a beat interval is never beaten for.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from services.store import jobs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Beating:
    sessions: sessionmaker[Session]
    lease: str
    every: float  # seconds between beats
    since: float  # time.monotonic() when it was registered


_lock = threading.Lock()
_jobs: dict[int, _Beating] = {}
_thread: threading.Thread | None = None


@contextmanager
def beating(sessions: sessionmaker[Session], job_id: int, lease: str, every_seconds: float) -> Iterator[None]:
    """Heartbeat for the job while the block runs (the job's lease fences every beat)."""
    global _thread
    with _lock:
        _jobs[job_id] = _Beating(sessions, lease, every_seconds, time.monotonic())
        if _thread is None or not _thread.is_alive():  # one per process, started in it (after a fork)
            _thread = threading.Thread(target=_run, name="heartbeat", daemon=True)
            _thread.start()
    try:
        yield
    finally:
        with _lock:
            _jobs.pop(job_id, None)


def _run() -> None:
    every = 1.0
    while True:
        time.sleep(every)
        with _lock:
            registered = list(_jobs.items())
        every = min((entry.every for _, entry in registered), default=1.0)
        now = time.monotonic()
        for job_id, entry in registered:
            if now - entry.since >= entry.every:
                _beat(job_id, entry)


def _beat(job_id: int, entry: _Beating) -> None:
    try:
        with entry.sessions.begin() as session:
            alive = jobs.heartbeat(session, job_id, entry.lease)
    except Exception:  # a database hiccup: try again next beat
        logger.warning("job %s: heartbeat failed", job_id, exc_info=True)
        return
    if not alive:  # the job was taken away; the training loop finds out at its next flush
        with _lock:
            if job_id in _jobs and _jobs[job_id].lease == entry.lease:
                del _jobs[job_id]
