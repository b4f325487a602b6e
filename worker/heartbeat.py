"""A thread that tells the store a job's worker is alive, independent of how long a step takes.

The reaper requeues a running job whose heartbeat is older than HEARTBEAT_TIMEOUT: its worker was
killed, lost its machine, or hangs. The thread stops with the job (a context manager).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from services.store import jobs

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, sessions: sessionmaker[Session], job_id: int, lease: str, every_seconds: float):
        self.sessions, self.job_id, self.lease, self.every = sessions, job_id, lease, every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.sessions.begin() as session:
                    alive = jobs.heartbeat(session, self.job_id, self.lease)
                if not alive:
                    return  # the job was taken away; the training loop finds out at its next flush
            except Exception:
                logger.warning("job %s: heartbeat failed", self.job_id, exc_info=True)
