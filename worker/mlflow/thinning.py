"""Which of a job's stored points its MLflow run gets, so every key stays short enough for MLflow's UI.

Each key gets every point up to its limit (MLFLOW_MAX_POINTS_PER_KEY for the statistics,
MLFLOW_MAX_LOSS_POINTS for the loss, the accuracy and the epoch figures); past it the REST metrics'
own downsampling (services/store/metrics.py: equal buckets, each keeping its first, min, max and last
point). The buckets are cut on the length the spec plans for the key, so they can be sent as they
fill while the job trains and a point is never sent twice; a job that ends early keeps the buckets it
filled, its last one cut short. Nothing in the store is thinned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.settings import Settings
from services.store.metrics import bucket_bounds, kept_indices
from services.store.models import Job

from .run_content import parsed

EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
LOSS_KEYS = frozenset({"loss", "accuracy", *EPOCH_KEYS})


@dataclass(frozen=True)
class KeyPlan:
    planned: int  # points the spec will record for the key
    limit: int  # points MLflow gets at most

    @property
    def thinned(self) -> bool:
        return self.planned > self.limit


def planned_points(job: Job) -> tuple[int, int]:
    """(points a step key records, points an epoch key records), from the spec alone."""
    spec, sizes = parsed(job)
    every = spec.record.every
    step_points = len(range(0, sizes.total_steps, every)) + (0 if (sizes.total_steps - 1) % every == 0 else 1)
    return step_points, -(-sizes.total_steps // sizes.steps_per_epoch)


def key_plan(job: Job, key: str, settings: Settings) -> KeyPlan:
    step_points, epoch_points = planned_points(job)
    limit = settings.mlflow_max_loss_points if key in LOSS_KEYS else settings.mlflow_max_points_per_key
    return KeyPlan(epoch_points if key in EPOCH_KEYS else step_points, limit)


def to_send(plan: KeyPlan, first: int, values: np.ndarray, ended: bool) -> tuple[np.ndarray, np.ndarray]:
    """Of the stored points `first`, `first+1`, … (their `values`), the indices to send and, for each,
    the cursor position that sending it completes: its bucket's end with the bucket's last kept
    point, the bucket's start before it (the cursor only ever stops between buckets). Only whole
    buckets while the job trains; the partial last one too once it has ended."""
    n = first + values.size
    if not plan.thinned:
        keep = np.arange(first, n, dtype=np.int64)
        return keep, keep + 1
    bounds = bucket_bounds(plan.planned, plan.limit, upto=n)
    bounds = bounds[bounds >= first]
    if bounds.size == 0 or bounds[0] != first:  # the cursor sits on a bucket edge; anything else is a new grid
        bounds = np.concatenate([[first], bounds])
    complete = bounds[bounds <= n]
    if ended and complete[-1] < n:
        complete = np.concatenate([complete, [n]])
    if complete.size < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    keep = kept_indices(values, complete, offset=first)
    bucket = np.searchsorted(complete, keep, side="right") - 1
    last_in_bucket = np.r_[bucket[1:] != bucket[:-1], True]
    return keep, np.where(last_in_bucket, complete[bucket + 1], complete[bucket])


def first_turn(keep: np.ndarray, marks: np.ndarray, budget: int) -> int:
    """How many of `keep` to send in a turn of about `budget` points: up to the end of a bucket."""
    if keep.size <= budget:
        return keep.size
    ends = np.flatnonzero(marks > keep)  # the last kept point of each bucket
    at = int(np.searchsorted(ends, budget - 1))
    return int(ends[at]) + 1 if at < ends.size else keep.size


def points_due(job: Job, counts: dict[str, int], settings: Settings) -> int:
    """About how many points the run gets in all for the points stored now (`counts` per key): every
    point of a key within its limit, at most four per bucket past it."""
    due = 0
    for key, n in counts.items():
        plan = key_plan(job, key, settings)
        if not plan.thinned:
            due += n
        else:
            bounds = bucket_bounds(plan.planned, plan.limit, upto=n)
            due += int(np.minimum(np.diff(bounds[bounds <= n]), 4).sum()) + min(4, n - int(bounds[bounds <= n][-1]))
    return due


def thinning_tags(job: Job, settings: Settings, series_url: str | None) -> dict[str, str]:
    """What the run says about its series: the limits and, for each family that was thinned, its bucket
    width and where the full series is."""
    step_points, epoch_points = planned_points(job)
    tags = {"bplab.points_per_key": f"statistics {settings.mlflow_max_points_per_key}, loss {settings.mlflow_max_loss_points}"}
    families = (("statistics", step_points, settings.mlflow_max_points_per_key), ("loss", step_points, settings.mlflow_max_loss_points),
                ("epoch figures", epoch_points, settings.mlflow_max_loss_points))
    thinned = [f"{name}: buckets of {-(-planned // max(1, limit // 4))} points, each keeping its first, min, max and last"
               for name, planned, limit in families if planned > limit]
    if thinned:
        tags["bplab.thinned"] = "; ".join(thinned)
        if series_url:
            tags["bplab.full_series"] = series_url
    return tags
