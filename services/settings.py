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


def get_settings() -> Settings:
    """Settings from the current environment."""
    return Settings()
