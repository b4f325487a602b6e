"""Two MLflow workers (as on two hosts) over one store and one MLflow server: both write, and each
job's run is written once: one run per job, every point once, none missing."""

from __future__ import annotations

import ast
import re
import uuid

import pytest
from mlflow import MlflowClient

from tests.support.databases import fault_backend, running_stack
from tests.support.runs import mlflow_series, rest_series
from tests.support.specs import small
from tests.support.waiting import wait_mirror, wait_status

JOBS = 40
DONE = re.compile(r"mirror_to_mlflow\[[^\]]+\] succeeded in [0-9.e-]+s: (\{.*\})")


@pytest.fixture
def two_mirrors(redis_server, mlflow_server, tmp_path_factory):
    stack_gen = running_stack(fault_backend(), redis_server.url, tmp_path_factory, workers=2, beat=True, env_overrides={
        "MLFLOW_TRACKING_URI": mlflow_server.url, "MLFLOW_FLUSH_SECONDS": "0.3", "MLFLOW_LOG_MODELS": "false"})
    stack = next(stack_gen)
    stack.start_mirror("mirror-a.log")
    stack.start_mirror("mirror-b.log")
    yield stack
    stack_gen.close()


def touched(log: str) -> set[int]:
    """The jobs a worker's passes wrote (each pass's result: {job id: mirror state})."""
    return {job_id for match in DONE.finditer(log) for job_id in ast.literal_eval(match.group(1))}


def test_two_mlflow_workers_write_each_run_once(two_mirrors, mlflow_server):
    experiment = f"two-mirrors-{uuid.uuid4().hex[:6]}"
    with two_mirrors.client() as api:
        ids = [api.post("/api/v1/jobs", json={**small(seed=i), "experiment": experiment}).json()["id"] for i in range(JOBS)]
        jobs = [wait_mirror(api, wait_status(api, job_id, {"succeeded"})["id"], timeout=180) for job_id in ids]
        client = MlflowClient(mlflow_server.url)
        runs = client.search_runs([jobs[0]["mlflow"]["experiment_id"]], max_results=1000)
        assert sorted(int(r.data.tags["job_id"]) for r in runs) == sorted(ids)  # one run per job
        assert {r.info.run_id for r in runs} == {j["mlflow"]["run_id"] for j in jobs}
        for job in jobs:
            stored = rest_series(api, job["id"])
            for key in ("loss", "grad_norm/dense_1.weight"):
                assert mlflow_series(client, job["mlflow"]["run_id"], key) == stored[key]  # every point once, none missing
            assert job["mlflow"]["points"] == job["mlflow"]["points_due"] == sum(len(s) for s in stored.values())
    a, b = (touched((two_mirrors.logdir / name).read_text()) for name in ("mirror-a.log", "mirror-b.log"))
    assert a and b, "both MLflow workers should have written runs"
    assert a | b >= set(ids)
