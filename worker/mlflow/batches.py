"""MLflow's `log_batch` within its limits (mlflow/utils/validation.py): at most 1,000 entries a call,
of them at most 100 params and 100 tags."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100


def batches(metrics_out: list[Metric], params: list[Param], tags: list[RunTag]) -> Iterator[tuple[list, list, list]]:
    """Chunks within MLflow's limits per log_batch: at most 100 params, 100 tags and 1,000 entries in all."""
    while metrics_out or params or tags:
        batch_params, params = params[:MAX_PARAMS_TAGS_PER_BATCH], params[MAX_PARAMS_TAGS_PER_BATCH:]
        batch_tags, tags = tags[:MAX_PARAMS_TAGS_PER_BATCH], tags[MAX_PARAMS_TAGS_PER_BATCH:]
        room = MAX_METRICS_PER_BATCH - len(batch_params) - len(batch_tags)
        batch_metrics, metrics_out = metrics_out[:room], metrics_out[room:]
        yield batch_metrics, batch_params, batch_tags


def send(client: MlflowClient, run_id: str, metrics_out: list[Metric], params: list[Param], tags: list[RunTag],
         after: Callable[[int], None] | None = None) -> None:
    """Everything in as few calls as MLflow takes; `after(n)` once each call's n metrics are stored."""
    for batch_metrics, batch_params, batch_tags in batches(metrics_out, params, tags):
        client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)
        if after is not None:
            after(len(batch_metrics))
