"""How many BLAS threads each worker process runs: its share of the cores, not all of them.

NumPy's BLAS (OpenBLAS) starts a thread per core in every process. A training worker runs one
process per core, beside the API, the store and the MLflow worker, so each process's BLAS threads
fight the others for the same cores; a BLAS call waits for a descheduled thread of its own, and a
stacked step of small products (one BLAS call per member) takes three times as long as on an idle
machine (bench/stacked.py, under `make up`). So each process gets `cores ÷ processes` threads (at
least one), or WORKER_BLAS_THREADS. What a job computes does not change: every product is the same
BLAS call (tests/engine/test_stacked.py), which splits its work over threads without changing a
sum's order.
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
_chosen: dict[str, int] = {}


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def blas_threads(setting: int | None, available: int, processes: int) -> int:
    """WORKER_BLAS_THREADS when set, else each of `processes` gets an equal share of `available` cores (at least one)."""
    return setting if setting is not None else max(1, available // max(processes, 1))


@celeryd_after_setup.connect
def choose_for_worker(instance: Any = None, **_: Any) -> None:
    """In the worker's main process, once its pool size is known; applied here too (a solo pool trains here)."""
    processes = int(getattr(instance, "concurrency", None) or 1)
    _chosen["threads"] = threads = blas_threads(settings.worker_blas_threads, cores(), processes)
    threadpool_limits(limits=threads, user_api="blas")
    running = sorted({(pool["internal_api"], pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"})
    logger.info("BLAS threads: %s per process (%s processes on %s cores): %s", threads, processes, cores(),
                ", ".join(f"{name} runs {n}" for name, n in running) or "no BLAS library found")


@worker_process_init.connect
def apply_in_pool_process(**_: Any) -> None:
    """In each pool process, after the fork."""
    if "threads" in _chosen:
        threadpool_limits(limits=_chosen["threads"], user_api="blas")
