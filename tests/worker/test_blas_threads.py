"""Each worker process runs one BLAS thread unless WORKER_BLAS_THREADS says more (worker/blas_threads.py):
the rule, a pool process after the fork with the real OpenBLAS, and a real Celery worker saying so."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from services.settings import Settings
from tests.support.services import wait_for
from worker import blas_threads

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("setting", "threads"), [(None, 1), (1, 1), (4, 4)])
def test_each_process_runs_one_blas_thread_or_the_setting(setting, threads, monkeypatch):
    if setting is None:
        monkeypatch.delenv("WORKER_BLAS_THREADS", raising=False)
    else:
        monkeypatch.setenv("WORKER_BLAS_THREADS", str(setting))
    assert Settings().worker_blas_threads == threads


def _blas_threads_after_fork(pipe) -> None:
    blas_threads.apply_in_pool_process()
    pipe.send([pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"])


def test_a_pool_process_runs_one_after_the_fork():
    with threadpool_limits(limits=2, user_api="blas"):  # the parent at two: the child sets its own (undone after the test)
        receiving, sending = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("fork").Process(target=_blas_threads_after_fork, args=(sending,))
        child.start()
        counts = receiving.recv()
        child.join(10)
    assert counts and set(counts) == {1}


def test_a_training_worker_says_what_each_process_runs(tmp_path):
    cores = blas_threads.cores()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'bplab.db'}", "REDIS_URL": "redis://127.0.0.1:6379/0",
           "BPLAB_QUEUE": f"bplab-test-{uuid.uuid4().hex[:8]}", "MLFLOW_TRACKING_URI": "", "PYTHONPATH": str(ROOT)}
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen([str(Path(sys.executable).parent / "celery"), "-A", "worker.app", "worker", "--concurrency",
                                   str(cores), "--loglevel", "INFO"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        said = f"BLAS threads: 1 per process ({cores} processes on {cores} cores): openblas runs 1"
        wait_for(lambda: said in log.read_text(), 60, what=said)
    finally:
        worker.terminate()
        worker.wait(30)
