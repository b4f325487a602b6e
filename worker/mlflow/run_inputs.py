"""The dataset a run trained on, as MLflow's own dataset inputs (what the run page and the *Datasets
used* column show): the uploaded dataset's name, digest, source `bplab:datasets/<id>`, schema and
size, in context `training`; when the job held a part out, the two parts in contexts `training` and
`validation`, each with its own digest (the table's, the part and the seed that drew it: MLflow keeps
one input per dataset and run, so one digest for both would keep one). Logged when the run is made
(again harmlessly if a pass dies in between)."""

from __future__ import annotations

import hashlib
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
    rows, fraction = data.get("rows") or 0, data.get("validation_split") or 0.0
    held_out = round(rows * fraction) if fraction else 0
    parts = {"training": rows - held_out, **({"validation": held_out} if held_out else {})}
    inputs = []
    for context, n in parts.items():
        # the whole table, or (split) the part this job's seed drew: its own digest, since MLflow keeps one input per dataset and run
        drawn = f"{data['digest']}:{context}:{job.spec.get('seed', 0)}:{fraction}"
        digest = data["digest"] if not held_out else hashlib.sha256(drawn.encode()).hexdigest()
        dataset = Dataset(name=row.name if row is not None else f"dataset {data['dataset']}", digest=digest[:DIGEST_CHARS], source_type="bplab",
                          source=json.dumps({"uri": f"bplab:datasets/{data['dataset']}", "part": context if held_out else "all"}),
                          schema=json.dumps(schema), profile=json.dumps({"num_rows": n, "num_elements": n * len(used)}))
        inputs.append(DatasetInput(dataset, [InputTag(CONTEXT_TAG, context)]))
    return inputs


def log_dataset_inputs(client: MlflowClient, session: Session, job: Job, run_id: str) -> None:
    inputs = dataset_inputs(session, job)
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
