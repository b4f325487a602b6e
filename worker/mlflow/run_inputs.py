"""The dataset a run trained on, as MLflow's own dataset inputs (what the run page and the *Datasets
used* column show): the uploaded dataset's name, digest, source `bplab:datasets/<id>`, schema and
size, in context `training`, and again in context `validation` when the job held a part out.
Logged when the run is made (again harmlessly if a pass dies in between: MLflow keeps one input per
dataset, digest and context)."""

from __future__ import annotations

import json

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag
from sqlalchemy.orm import Session

from services.store import datasets
from services.store.models import Job

CONTEXT_TAG = "mlflow.data.context"
DIGEST_CHARS = 32  # MLflow keeps digests of at most 36 characters; ours is SHA-256's hex, cut here


def dataset_inputs(session: Session, job: Job) -> list[DatasetInput]:
    """The run's dataset inputs (none for builtin or inline data)."""
    data = job.spec.get("data") or {}
    if data.get("dataset") is None:
        return []
    row = datasets.get(session, data["dataset"])
    columns = {c["name"]: c for c in row.columns} if row is not None else {}
    used = [*data.get("features", []), *([data["target"]] if isinstance(data.get("target"), str) else data.get("target") or [])]
    schema = {"mlflow_colspec": [{"type": "double" if columns.get(n, {}).get("type", "number") == "number" else "string", "name": n,
                                  "required": True} for n in used]}
    dataset = Dataset(name=row.name if row is not None else f"dataset {data['dataset']}", digest=data["digest"][:DIGEST_CHARS],
                      source_type="bplab", source=json.dumps({"uri": f"bplab:datasets/{data['dataset']}"}), schema=json.dumps(schema),
                      profile=json.dumps({"num_rows": data.get("rows"), "num_elements": (data.get("rows") or 0) * len(used)}))
    contexts = ["training"] + (["validation"] if data.get("validation_split") else [])
    return [DatasetInput(dataset, [InputTag(CONTEXT_TAG, context)]) for context in contexts]


def log_dataset_inputs(client: MlflowClient, session: Session, job: Job, run_id: str) -> None:
    inputs = dataset_inputs(session, job)
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
