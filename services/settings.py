"""One typed settings object, read from the environment once (the API and the worker share it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=lambda: os.environ.get("DATABASE_URL") or f"sqlite:///{ROOT / 'var' / 'bplab.db'}")
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    queue: str = field(default_factory=lambda: os.environ.get("BPLAB_QUEUE") or "bplab")
    # MLflow mirror: off when MLFLOW_TRACKING_URI is empty. MLFLOW_UI_URL is the address users open
    # (it differs from the tracking URI inside docker compose).
    mlflow_tracking_uri: str = field(default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", ""))
    mlflow_ui_url: str = field(default_factory=lambda: os.environ.get("MLFLOW_UI_URL") or os.environ.get("MLFLOW_TRACKING_URI", ""))
    mlflow_max_points: int = field(default_factory=lambda: _int("MLFLOW_MAX_POINTS", 10_000))
    mlflow_flush_seconds: float = field(default_factory=lambda: float(os.environ.get("MLFLOW_FLUSH_SECONDS", "1.0")))
    # Points per second the live mirror sends while a job trains (0: no limit); the rest follows at its end.
    mlflow_live_points_per_second: int = field(default_factory=lambda: _int("MLFLOW_LIVE_POINTS_PER_SECOND", 1000))
    mlflow_backfill_seconds: float = field(default_factory=lambda: float(os.environ.get("MLFLOW_BACKFILL_SECONDS", "15")))
    public_url: str = field(default_factory=lambda: os.environ.get("PUBLIC_URL", ""))
    # Limits, enforced before anything is queued (each reported in the 4xx answer).
    max_params: int = field(default_factory=lambda: _int("MAX_PARAMS", 5_000_000))
    max_steps: int = field(default_factory=lambda: _int("MAX_STEPS", 1_000_000))
    max_samples: int = field(default_factory=lambda: _int("MAX_SAMPLES", 200_000))
    max_sweep_jobs: int = field(default_factory=lambda: _int("MAX_SWEEP_JOBS", 500))
    max_request_bytes: int = field(default_factory=lambda: _int("MAX_REQUEST_BYTES", 32 * 1024 * 1024))
    # The worker writes buffered points this often; each write also reads the cancel flag, so a
    # cancelled job stops within this interval (plus one step).
    flush_seconds: float = field(default_factory=lambda: float(os.environ.get("FLUSH_SECONDS", "0.5")))
    # Reliability: a running job heartbeats; the reaper (Celery beat, every REAPER_SECONDS) requeues
    # one silent for HEARTBEAT_TIMEOUT seconds, up to MAX_ATTEMPTS, and hands queued jobs still in
    # the outbox to the broker. A retry resumes from the last checkpoint (every CHECKPOINT_EVERY steps).
    heartbeat_seconds: float = field(default_factory=lambda: float(os.environ.get("HEARTBEAT_SECONDS", "2")))
    heartbeat_timeout: float = field(default_factory=lambda: float(os.environ.get("HEARTBEAT_TIMEOUT", "30")))
    reaper_seconds: float = field(default_factory=lambda: float(os.environ.get("REAPER_SECONDS", "5")))
    # An unclaimed job sent this long ago while the queue is empty lost its message (a Redis restarted
    # without persistence): the outbox sends it again.
    resend_after: float = field(default_factory=lambda: float(os.environ.get("RESEND_AFTER", "60")))
    # How long a worker keeps retrying its writes while the database is away before giving up the attempt.
    db_retry_seconds: float = field(default_factory=lambda: float(os.environ.get("DB_RETRY_SECONDS", "60")))
    max_attempts: int = field(default_factory=lambda: _int("MAX_ATTEMPTS", 3))
    checkpoint_every: int = field(default_factory=lambda: _int("CHECKPOINT_EVERY", 1000))
    # Seconds of training per attempt; a submission may ask for less, never more.
    soft_time_limit: int = field(default_factory=lambda: _int("JOB_SOFT_TIME_LIMIT", 3600))
    hard_time_limit: int = field(default_factory=lambda: _int("JOB_HARD_TIME_LIMIT", 3900))
    # Who may see what: AUTH=on requires `Authorization: Bearer <token>`; AUTH=off (everything owned
    # by "local") is refused unless the API listens on loopback (API_HOST).
    auth: str = field(default_factory=lambda: (os.environ.get("AUTH") or "off").lower())
    api_host: str = field(default_factory=lambda: os.environ.get("API_HOST") or "127.0.0.1")
    # Submissions (POST /jobs, POST /sweeps) per token, in Flask-Limiter's notation; counted in Redis.
    submit_rate_limit: str = field(default_factory=lambda: os.environ.get("SUBMIT_RATE_LIMIT") or "600/minute;50/second")

    def __post_init__(self):
        if self.auth not in ("on", "off"):
            raise ValueError(f"AUTH must be 'on' or 'off', got {self.auth!r}")
        if self.max_attempts < 1 or self.checkpoint_every < 1:
            raise ValueError("MAX_ATTEMPTS and CHECKPOINT_EVERY must be at least 1")
        if not 0 < self.soft_time_limit <= self.hard_time_limit:
            raise ValueError(f"need 0 < JOB_SOFT_TIME_LIMIT <= JOB_HARD_TIME_LIMIT, got {self.soft_time_limit} and {self.hard_time_limit}")


def get_settings() -> Settings:
    """Settings from the current environment."""
    return Settings()
