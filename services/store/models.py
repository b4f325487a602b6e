"""The SQL store: jobs and what their training recorded. Created only by Alembic migrations.

Metric points are stored in chunks: one row per (job, metric key, chunk of up to 1,000 points), the
steps and values packed as little-endian arrays. Chunks make ingest cheap (one row per key per
flush instead of one per point), reads of one key a handful of rows, and writes idempotent: a
re-sent chunk replaces the same row.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .columns import UTCDateTime, enum_column, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CHUNK_POINTS = 1000
LOCAL_OWNER = "local"  # the owner of everything while AUTH=off
MAX_INT32 = 2**31 - 1  # ids, steps and cursors are 32-bit integer columns: nothing larger reaches a query


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobStatus(enum.StrEnum):
    """queued -> running -> succeeded | diverged | failed | cancelled (see store/jobs.py)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    diverged = "diverged"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL = frozenset({JobStatus.succeeded, JobStatus.diverged, JobStatus.failed, JobStatus.cancelled})


class SweepStatus(enum.StrEnum):
    running = "running"
    finished = "finished"
    cancelled = "cancelled"


class MirrorState(enum.StrEnum):
    """How far a job's (or a sweep's) MLflow run is behind the store."""

    pending = "pending"  # behind: more to send, or MLflow was unreachable (the reason is in mirror_error)
    synced = "synced"  # complete, final status included
    failed = "failed"  # MLflow refused the data; not retried
    disabled = "disabled"  # no MLflow configured


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_owner_id", "owner", "id"),)  # an owner's jobs, newest first, a page at a time

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(200))
    experiment: Mapped[str] = mapped_column(String(200), index=True, default="default")
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    sweep_trial: Mapped[int | None] = mapped_column(Integer)  # the Optuna trial (one point of the search space)
    sweep_seed: Mapped[int | None] = mapped_column(Integer)  # which replica of the point (0 .. seeds-1)
    sweep_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the point: dotted path -> value
    # Jobs of one sweep with equal keys have one shape and may train as one stack (engine/stacking.py); null: alone.
    stack_key: Mapped[str | None] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(200), index=True, default=LOCAL_OWNER, server_default=LOCAL_OWNER)
    status: Mapped[JobStatus] = mapped_column(enum_column(JobStatus), index=True, default=JobStatus.queued)
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # attempts started (the reaper requeues up to MAX_ATTEMPTS)
    lease: Mapped[str | None] = mapped_column(String(36))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempt_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Seconds of training per attempt: past the soft limit the worker stops the job, past the hard
    # limit the reaper ends it even if its worker is stuck.
    soft_time_limit: Mapped[int | None] = mapped_column(Integer)
    hard_time_limit: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, default=0)  # optimizer steps done (progress)
    total_steps: Mapped[int] = mapped_column(Integer)
    n_params: Mapped[int] = mapped_column(Integer)
    # What the job may record at most, in bytes (its recording budget); an owner's quota sums them.
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_loss: Mapped[float | None] = mapped_column()
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    # The MLflow mirror: where it writes, how far it got (points per key), and who is writing.
    mlflow_experiment_id: Mapped[str | None] = mapped_column(String(64))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    # The uploaded dataset the job trains on (data.dataset), for lineage; the spec holds its digest.
    dataset_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The run's MLflow model (a LoggedModel), once the MLflow worker logged it: what /register registers.
    mlflow_model_id: Mapped[str | None] = mapped_column(String(64))
    # Set just before the run is created: a mirror that finds it without a run id looks the run up
    # (by its job_key tag) instead of creating a second one after a crash in between.
    mlflow_run_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mirror_state: Mapped[MirrorState] = mapped_column(enum_column(MirrorState), default=MirrorState.pending, server_default="pending",
                                                      index=True)
    mirror_error: Mapped[str | None] = mapped_column(String(2000))
    mirror_cursor: Mapped[dict[str, int] | None] = mapped_column(JSON)
    mirror_points: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Points the run is to get in all (as of the mirror's last look; past MLflow's limits, thinned):
    # with mirror_points, how far behind the run is.
    mirror_points_due: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the ended job's run got its status, end time and summary in MLflow (runs first, series after).
    mlflow_run_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the mirror last took a turn at the job's series: the next turn goes to the one waiting longest.
    mirror_series_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mirror_lock: Mapped[str | None] = mapped_column(String(36))
    mirror_lock_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the name, tags or archived flag changed after the run was written: the mirror sends them again.
    mirror_meta_stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Hidden from lists (and the run deleted in MLflow, restorably) until restored with its experiment.
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)
    # A fork (POST /jobs/{id}/fork, /continue) starts from its parent's state after `forked_from_step` steps; its
    # points before that step are read through from the parent (services/store/metrics.py), never copied.
    forked_from_job: Mapped[int | None] = mapped_column(Integer, index=True)
    forked_from_step: Mapped[int | None] = mapped_column(Integer)
    # When the owner deleted its kept checkpoints (DELETE /jobs/{id}/checkpoints): replays and forks then say so (409).
    checkpoints_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tags: Mapped[list[JobTag]] = relationship(cascade="all, delete-orphan", lazy="selectin", order_by="JobTag.key")
    payload: Mapped[JobPayload] = relationship(cascade="all, delete-orphan", lazy="select", uselist=False)
    model_versions: Mapped[list[ModelVersion]] = relationship(cascade="all, delete-orphan", lazy="selectin", order_by="ModelVersion.id")
    diagnoses: Mapped[list[Diagnosis]] = relationship(cascade="all, delete-orphan", lazy="selectin", order_by="Diagnosis.id")

    @property
    def spec(self) -> dict[str, Any]:
        return self.payload.spec

    @property
    def model(self) -> dict[str, Any] | None:
        """Final weights and biases (once the job has ended)."""
        return self.payload.model


class JobPayload(Base):
    """The job's spec and trained model, kept out of the jobs row: they can be megabytes (inline
    data, big weight matrices), and SQLite rewrites a whole row on every progress update."""

    __tablename__ = "job_payloads"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class JobTag(Base):
    __tablename__ = "job_tags"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True, index=True)
    value: Mapped[str] = mapped_column(String(500), default="")


class Dataset(Base):
    """An uploaded table, named by its content: an owner's same table uploaded twice is one row.
    `columns` holds each column's profile (services/datasets/canonical.py); the rows are in DatasetBlob."""

    __tablename__ = "datasets"
    __table_args__ = (Index("ux_datasets_owner_digest", "owner", "digest", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(200), index=True, default=LOCAL_OWNER)
    name: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    preview: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    bytes: Mapped[int] = mapped_column(BigInteger)  # what the store keeps (counted in the owner's MAX_OWNER_BYTES)
    upload_bytes: Mapped[int] = mapped_column(BigInteger)  # the file as uploaded
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetBlob(Base):
    """A dataset's rows in their canonical form (a compressed NPZ, read without pickle)."""

    __tablename__ = "dataset_blobs"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ModelVersion(Base):
    """A version of an MLflow registered model made from the job's run by `POST /jobs/{id}/register`."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Diagnosis(Base):
    """What went wrong in a job, as the engine's diagnoser found it while training (engine/diagnoses.py):
    begun at `step`, ended at `ended_step` (null while it holds). A retried attempt finds the same ones
    again (the same spec gives the same bits), so (job, kind, layer, step) is unique and writes are idempotent."""

    __tablename__ = "diagnoses"
    __table_args__ = (UniqueConstraint("job_id", "kind", "layer", "step", name="uq_diagnoses_job_kind_layer_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    layer: Mapped[str] = mapped_column(String(64), default="")  # "" when it is the whole network's
    severity: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)
    ended_step: Mapped[int | None] = mapped_column(Integer)
    sentence: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Computation(Base):
    """Something computed on request by a training worker from a job that has ended, then served from here: a loss
    landscape (`kind` "landscape", engine/landscapes.py) or a replayed step's full gradients and trace ("replay",
    engine/replay.py), asked for by `key` (the request's fields). `result` is null until it is done; `error` holds why
    it could not be (the next request asks again)."""

    __tablename__ = "computations"
    __table_args__ = (UniqueConstraint("job_id", "kind", "key", name="uq_computations_job_kind_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(200))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    seconds: Mapped[float | None] = mapped_column()


class Webhook(Base):
    """An owner's webhook: where to POST which events, and the secret its deliveries are signed with
    (HMAC-SHA256; shown to the owner once, kept here to sign)."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: the outbox the maintenance worker sends from, and the delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MetricChunk(Base):
    """Up to CHUNK_POINTS points of one metric of one job: steps '<i4', values '<f8'."""

    __tablename__ = "metric_chunks"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    n: Mapped[int] = mapped_column(Integer)
    steps: Mapped[bytes] = mapped_column(LargeBinary)
    values: Mapped[bytes] = mapped_column(LargeBinary)


class StepArray(Base):
    """Full gradients (an .npz, no pickle) or a backward-pass trace (JSON) of one recorded step."""

    __tablename__ = "step_arrays"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "gradients" | "trace"
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Dispatch(Base):
    """The outbox: a queued job to hand to the broker. Written in the transaction that queues the job,
    deleted in the one that claims it, so a job queued while Redis is down (or whose message a
    restarted Redis lost) is sent again until a worker has it."""

    __tablename__ = "dispatches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last handed to the broker


class Checkpoint(Base):
    """A running job's full training state (an .npz, no pickle) after `step` steps; its points up to
    that step are stored with it in one transaction, so a retry resumes exactly there."""

    __tablename__ = "checkpoints"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeptCheckpoint(Base):
    """A job's training state after `step` steps, kept after it ends (engine/checkpoint_cadence.py: every N
    steps and its last): what a replay or fork of a later step trains on from."""

    __tablename__ = "kept_checkpoints"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256; `owner` owns what is submitted with it."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    owner: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OwnerUsage(Base):
    """What an owner's jobs may record in all (the sum of their reservations): the quota MAX_OWNER_BYTES
    bounds, kept as one row per owner so checking it costs the same however many jobs they have; and
    when a job of theirs last started (fairness.py: whose turn it is)."""

    __tablename__ = "owner_usage"

    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    """An `Idempotency-Key` an owner used: the request it came with (a hash) and what it created."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of method, path and canonical JSON body
    resource: Mapped[str] = mapped_column(String(16))  # "job" | "sweep"
    resource_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sweep(Base):
    """A set of jobs exploring a search space; Optuna's study (in this database) decides the points."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200), index=True, default=LOCAL_OWNER, server_default=LOCAL_OWNER)
    experiment: Mapped[str] = mapped_column(String(200), default="default")
    strategy: Mapped[str] = mapped_column(String(16))
    status: Mapped[SweepStatus] = mapped_column(enum_column(SweepStatus), default=SweepStatus.running, index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_trials: Mapped[int] = mapped_column(Integer)
    seeds: Mapped[int] = mapped_column(Integer, default=1)
    max_parallel: Mapped[int] = mapped_column(Integer)
    trials_created: Mapped[int] = mapped_column(Integer, default=0)
    objective_metric: Mapped[str] = mapped_column(String(250))
    objective_goal: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    importance: Mapped[dict[str, float] | None] = mapped_column(JSON)
    # Points a sampler proposed that a job could not be (over a limit, or breaking a rule): {trial, params, field, reason}
    refused_points: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    lock: Mapped[str | None] = mapped_column(String(36))  # held while the sweep advances (store/locks.py)
    lock_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The sweep's MLflow parent run: created once under the mirror lock, finished (importance,
    # leaderboard, status) once the sweep has ended; `mirror_state` says whether that is done.
    mlflow_parent_run_id: Mapped[str | None] = mapped_column(String(64))
    mirror_state: Mapped[MirrorState] = mapped_column(enum_column(MirrorState), default=MirrorState.pending, server_default="pending")
    mirror_error: Mapped[str | None] = mapped_column(String(2000))
    mirror_lock: Mapped[str | None] = mapped_column(String(36))
    mirror_lock_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MlflowDeletion(Base):
    """The MLflow run of a deleted job, for the MLflow worker to delete (the job's row is gone)."""

    __tablename__ = "mlflow_deletions"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MlflowExperiment(Base):
    """An MLflow experiment the service created for an owner's experiment on one MLflow server: the
    mirror writes runs only into experiments recorded here, never into one it found by name (someone
    else may have made it). `key` is written before the experiment is created and set as its
    `bplab.key` tag, so one created just before a crash is told from a squatter's."""

    __tablename__ = "mlflow_experiments"
    server: Mapped[str] = mapped_column(String(500), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    experiment: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(32))
    mlflow_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
