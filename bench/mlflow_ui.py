"""What a metric's length costs in MLflow's UI: the figure MLFLOW_MAX_POINTS_PER_KEY is chosen from.

MLflow's UI draws each run chart from `GET /ajax-api/2.0/mlflow/metrics/get-history-bulk-interval`
with `max_results=320` (its bundle's `maxResults:320`, one call per metric and up to 100 runs): the
server reads every stored step of the key to choose the 320 it returns, so a chart's wait grows with
the points the key holds. This bench logs one run per length into a real `mlflow server` (as `make
up` runs it: SQLite, one worker), then times that call (one run, and 20 runs at once as the compare
view asks), and the full history (`get-history`, what MLflow's own client reads), median of 10.

    .venv/bin/python bench/mlflow_ui.py [--lengths 1000,2500,10000,25000,100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.services import MlflowServer

RUNS_AT_ONCE = 20


def log_run(client, experiment: str, length: int, copies: int) -> list[str]:
    from mlflow.entities import Metric

    runs = []
    now = int(time.time() * 1000)
    for _ in range(copies):
        run_id = client.create_run(experiment).info.run_id
        for start in range(0, length, 1000):
            client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (i + 1), now, i) for i in range(start, min(start + 1000, length))])
        runs.append(run_id)
    return runs


def median_ms(call, times: int = 10) -> float:
    samples = []
    for _ in range(times):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1000,2500,10000,25000,100000")
    args = parser.parse_args()
    from mlflow import MlflowClient

    server = MlflowServer().start()
    try:
        client = MlflowClient(server.url)
        http = httpx.Client(base_url=server.url, timeout=120)
        print("points in the key | one chart (1 run, max_results=320) | compare chart (20 runs) | full history (1 run)")
        for length in (int(x) for x in args.lengths.split(",")):
            experiment = client.create_experiment(f"ui-{length}")
            runs = log_run(client, experiment, length, RUNS_AT_ONCE if length <= 25_000 else 1)

            def chart(run_ids: list[str]) -> None:
                answer = http.get("/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                                  params={"run_ids": run_ids, "metric_key": "loss", "max_results": 320})
                answer.raise_for_status()

            one = median_ms(lambda runs=runs: chart(runs[:1]))
            many = f"{median_ms(lambda runs=runs: chart(runs), 5):8.1f} ms" if len(runs) == RUNS_AT_ONCE else "  (not logged)"
            full = median_ms(lambda runs=runs: client.get_metric_history(runs[0], "loss"), 5)
            print(f"{length:>17,} | {one:31.1f} ms | {many:>23} | {full:17.1f} ms", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
