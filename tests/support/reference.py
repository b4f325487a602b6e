"""What a job should have recorded: the engine run once, uninterrupted, in the test process."""

from __future__ import annotations

import functools
import json

import httpx

from engine.training import run


@functools.lru_cache(maxsize=8)
def _clean(spec_json: str) -> dict:
    return run(json.loads(spec_json))


def clean_run(spec: dict) -> dict:
    """`engine.training.run(spec)`: metrics as {key: [[step, value], ...]} and the final model."""
    return _clean(json.dumps(spec, sort_keys=True))


def stored_series(client: httpx.Client, job_id: int) -> dict[str, list[list[float]]]:
    """Every point the service stored for the job, as {key: [[step, value], ...]}."""
    body = client.get(f"/api/v1/jobs/{job_id}/metrics").json()
    return {key: [[s, v] for s, v in zip(series["steps"], series["values"], strict=True)] for key, series in body.items()}


def point_faults(stored: dict[str, list[list[float]]], expected: dict[str, list[list[float]]]) -> tuple[int, int]:
    """(duplicated, missing) points of `stored` against `expected`, over all keys."""
    duplicated = missing = 0
    for key in set(stored) | set(expected):
        steps = [s for s, _ in stored.get(key, [])]
        duplicated += len(steps) - len(set(steps))
        missing += len({s for s, _ in expected.get(key, [])} - set(steps))
    return duplicated, missing
