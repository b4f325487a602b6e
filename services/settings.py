"""One typed settings object, read from the environment (the API, the workers and `make up` share it).

Every field is read from the environment variable of the same name in capitals (`flush_seconds`
from `FLUSH_SECONDS`); an empty variable means the default. A bad value stops start-up with the
variable's name and the reason (`SettingsError`). `python -m services.settings` prints the
configuration table that docs/operating.md carries (a test keeps the two equal).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"


class SettingsError(ValueError):
    """A configuration variable with a value the service cannot run with."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, frozen=True, extra="ignore")

    # -- where things are ---------------------------------------------------------------------
    database_url: str = Field(default=f"sqlite:///{VAR / 'bplab.db'}",
                              description="the store: SQLite (WAL mode) or `postgresql://…` (default: VAR_DIR/bplab.db)")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0",
                           description="the Celery broker (`make up` without it: an embedded Redis on EMBEDDED_REDIS_PORT)")
    bplab_queue: str = Field(default="bplab", min_length=1,
                             description="the training queue; periodic work uses `<queue>.maintenance`, MLflow `<queue>.mlflow`")
    public_url: str = Field(default="", description="the API's address as users reach it (links in MLflow runs)")
    api_host: str = Field(default="127.0.0.1", description="the address the API listens on; AUTH=off needs loopback")
    api_port: int = Field(default=8000, ge=1, le=65535, description="`make up`: the API's port")
    mlflow_port: int = Field(default=5000, ge=1, le=65535, description="`make up`: the MLflow server's port")
    embedded_redis_port: int = Field(default=6399, ge=1, le=65535, description="`make up` without REDIS_URL: the embedded Redis's port")
    var_dir: Path = Field(default=VAR, description="`make up`: where its SQLite store, embedded Redis, MLflow store and logs live")
    worker_concurrency: int | None = Field(default=None, ge=1, description="`make up`: processes of the training worker "
                                                                           "(empty: one per core)")
    worker_blas_threads: int = Field(default=1, ge=1, description="BLAS threads per worker process (1: a job's numbers are the "
                                                                  "same on every host; more speeds up wide networks, bitwise the "
                                                                  "same only among processes that run as many)")

    # -- MLflow ------------------------------------------------------------------------------
    mlflow_tracking_uri: str = Field(default="", description="the MLflow mirror's server (off when empty; `make up` starts one)")
    mlflow_tracking_username: str = Field(default="", description="with AUTH=on: MLflow's admin, as the MLflow worker and the token command sign in "
                                          "(MLflow's own variable)")
    mlflow_tracking_password: str = Field(default="", description="with AUTH=on: that admin's password (MLflow's own variable)")
    mlflow_ui_url: str = Field(default="", description="the MLflow address users open (default: MLFLOW_TRACKING_URI)")
    mlflow_max_points_per_key: int = Field(default=1_000, ge=4, description="points per statistic (norms, ratios, dead fractions) "
                                           "sent to MLflow; past it min/max buckets as the REST metrics downsample (bench/mlflow_ui.py)")
    mlflow_max_loss_points: int = Field(default=5_000, ge=4, description="the same for the loss, the accuracy and the epoch figures")
    mlflow_flush_seconds: float = Field(default=1.0, gt=0, description="how often the MLflow worker looks for runs behind the store")
    mlflow_log_models: bool = Field(default=True, description="log each succeeded run's network as an MLflow model (ONNX flavor)")

    # -- size limits, checked before anything is queued -----------------------------------------
    max_params: int = Field(default=5_000_000, ge=1, description="parameters per job")
    max_steps: int = Field(default=1_000_000, ge=1, description="optimizer steps per job")
    max_samples: int = Field(default=200_000, ge=1, description="samples per job")
    max_sweep_jobs: int = Field(default=500, ge=1, description="jobs per sweep (points × seeds)")
    max_dataset_bytes: int = Field(default=256 * 2**20, ge=1, description="bytes of one uploaded dataset file (POST /api/v1/datasets)")
    max_dataset_columns: int = Field(default=1000, ge=1, description="columns of one uploaded dataset")
    max_record_bytes: int = Field(default=64 * 1024 * 1024, ge=0,
                                  description="what one job may record (metric points, full gradients, traces): the most `record.max_bytes` may ask")
    max_metric_keys: int = Field(default=1000, ge=1, description="metric keys one job may record (they grow with its layers)")
    max_response_points: int = Field(default=1_000_000, ge=1000,
                                     description="metric points one answer of /metrics may hold (ask for fewer keys, a step range or max_points)")
    max_owner_bytes: int = Field(default=10 * 1024**3, ge=0, description="what one owner's jobs may record in all (their recording budgets)")
    max_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="request body size")

    # -- training and recording ---------------------------------------------------------------
    flush_seconds: float = Field(default=0.5, gt=0,
                                 description="how often a worker writes its buffered points (and sees a cancel); less often "
                                             "when a flush takes over a fifth of it (a big stack's)")
    checkpoint_every: int = Field(default=1000, ge=1, description="steps between checkpoints (a retry resumes from the last)")
    stack_max: int = Field(default=100, ge=1, description="queued jobs of one sweep that share a shape a worker trains as one stack "
                                                          "(1: never stack)")
    stack_max_bytes: int = Field(default=16 * 1024**2, ge=0, description="what one stack's members may hold in all while they train "
                                                                        "(weights, gradients, optimizer state, a batch's activations, data); "
                                                                        "a larger stack is split")
    max_sweep_state_bytes: int = Field(default=8 * 1024**3, ge=0, description="what one sweep's jobs would hold in all, trained at once "
                                                                             "(a sweep over it is refused)")
    job_soft_time_limit: int = Field(default=3600, ge=1,
                                     description="seconds of training per attempt before the worker stops a job")
    job_hard_time_limit: int = Field(default=3900, ge=1,
                                     description="seconds per attempt before the reaper ends a job even if its worker is stuck")

    # -- reliability --------------------------------------------------------------------------
    heartbeat_seconds: float = Field(default=2.0, gt=0, description="how often a running job's worker says it is alive")
    heartbeat_timeout: float = Field(default=30.0, gt=0, description="silence after which the reaper requeues a running job")
    reaper_seconds: float = Field(default=5.0, gt=0, description="how often the reaper and the outbox run")
    max_attempts: int = Field(default=3, ge=1, description="attempts before a job whose worker keeps vanishing fails")
    resend_after: float = Field(default=60.0, gt=0,
                                description="seconds after which an unclaimed job is sent again while the queue is empty")
    db_retry_seconds: float = Field(default=60.0, ge=0,
                                    description="how long a worker retries its writes while the database is away")

    # -- access ---------------------------------------------------------------------------------
    auth: Literal["on", "off"] = Field(default="off",
                                       description="`on`: every request needs `Authorization: Bearer <token>`; "
                                                   "`off`: everything is owned by `local`, allowed on loopback only")
    submit_rate_limit: str = Field(default="600/minute;50/second",
                                   description="submissions (jobs and sweeps) per owner, in Flask-Limiter's notation")
    api_threads: int = Field(default=16, ge=2, le=256, description="threads that run the API's requests (slow clients cost none: "
                                                                  "the server buffers each request first)")
    events_max_per_owner: int = Field(default=8, ge=1, description="event streams one owner may hold open (a 429 beyond)")
    events_max_streams: int = Field(default=8, ge=1, description="event streams open in all (a 503 beyond); below API_THREADS, "
                                                                "so other requests always have threads")
    events_idle_seconds: float = Field(default=30.0, gt=0, description="an event stream with nothing to say ends after this long "
                                                                      "(the client reconnects with Last-Event-ID)")
    events_max_seconds: float = Field(default=600.0, gt=0, description="an event stream ends after this long in any case")

    # -- webhooks -------------------------------------------------------------------------------
    webhook_allowed_hosts: str = Field(default="", description="comma-separated hosts webhooks may call (`hooks.example.com`, "
                                       "`*.example.com`, `*` for any); empty: none. A host that resolves to a private or loopback address is "
                                       "called only when listed by its exact name")
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="a delivery's whole time: connect, send, answer")
    webhook_max_attempts: int = Field(default=6, ge=1, le=50, description="attempts per delivery before it is marked failed")
    webhook_retry_seconds: float = Field(default=10.0, gt=0, description="the first retry's wait; each next one doubles it (at most an hour)")
    webhook_seconds: float = Field(default=2.0, gt=0, description="how often the maintenance worker sends due deliveries")

    @field_validator("auth", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _ui_defaults_to_tracking_uri(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("mlflow_ui_url") and data.get("mlflow_tracking_uri"):
            data = {**data, "mlflow_ui_url": data["mlflow_tracking_uri"]}
        if isinstance(data, dict) and not data.get("database_url") and data.get("var_dir"):  # as `make up` places it
            data = {**data, "database_url": f"sqlite:///{Path(data['var_dir']) / 'bplab.db'}"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.events_max_streams >= self.api_threads:
            raise ValueError(f"EVENTS_MAX_STREAMS ({self.events_max_streams}) must be below API_THREADS ({self.api_threads}): "
                             "streams hold a thread each")
        if self.job_soft_time_limit > self.job_hard_time_limit:
            raise ValueError(f"JOB_SOFT_TIME_LIMIT ({self.job_soft_time_limit}) must not exceed "
                             f"JOB_HARD_TIME_LIMIT ({self.job_hard_time_limit})")
        return self

    @property
    def maintenance_queue(self) -> str:
        """Periodic work (reaper, outbox, sweep top-up) has a queue of its own, so it never waits behind training."""
        return f"{self.bplab_queue}.maintenance"

    @property
    def mlflow_queue(self) -> str:
        """The MLflow worker's queue: nothing MLflow ever runs in a training worker."""
        return f"{self.bplab_queue}.mlflow"

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed, validated like the original."""
        return Settings(**{**self.model_dump(), **changes})


def get_settings() -> Settings:
    """Settings from the current environment; `SettingsError` names each bad variable and why."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """Pydantic's errors, one line per variable, named as the environment spells it."""
    lines = []
    for err in exc.errors(include_url=False):
        reason = err["msg"].removeprefix("Value error, ")
        if err["loc"]:
            reason = f"{'_'.join(str(p) for p in err['loc']).upper()}: {reason} (got {err['input']!r})"
        lines.append(reason)
    return "invalid configuration: " + "; ".join(lines)


def configuration_table() -> str:
    """The Markdown table of every variable, its default and its meaning (docs/operating.md)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(empty)" if default in ("", None) else f"`{str(default).replace(str(ROOT), '.')}`"
        rows.append(f"| `{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(configuration_table() + "\n")
