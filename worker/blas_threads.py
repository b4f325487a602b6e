"""How many BLAS threads each worker process runs: one, unless WORKER_BLAS_THREADS says more.

- A job's numbers must be its spec's alone, whichever host trains, resumes or replays it. OpenBLAS
  splits a product's sums by its thread count: a float32 (128, 784) @ (784, 256) product, or a
  float64 dot over 200,000 entries, differs in its last bits between one thread and two. One thread
  in every worker process keeps a job's results the same everywhere (more threads: the same only
  among processes that run as many).
- Speed: NumPy's BLAS starts a thread per core in every process, and a training worker runs a
  process per core beside the API, the store and the MLflow worker, so the threads fought over the
  cores; a stacked step of small products (one BLAS call per member) took three times as long under
  `make up` as on an idle machine (bench/stacked.py).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy  # noqa: F401  (its BLAS, loaded: threadpoolctl finds only the libraries a process has loaded)
from celery.signals import celeryd_after_setup, worker_process_init
from threadpoolctl import threadpool_info, threadpool_limits

from .app import settings

logger = logging.getLogger(__name__)


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@celeryd_after_setup.connect
def choose_for_worker(instance: Any = None, **_: Any) -> None:
    """In the worker's main process (a solo pool trains here), saying what each process runs."""
    processes, threads = int(getattr(instance, "concurrency", None) or 1), settings.worker_blas_threads
    threadpool_limits(limits=threads, user_api="blas")
    running = sorted({(pool["internal_api"], pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"})
    logger.info("BLAS threads: %s per process (%s processes on %s cores): %s", threads, processes, cores(),
                ", ".join(f"{name} runs {n}" for name, n in running) or "no BLAS library found")


@worker_process_init.connect
def apply_in_pool_process(**_: Any) -> None:
    """In each pool process, after the fork."""
    threadpool_limits(limits=settings.worker_blas_threads, user_api="blas")
