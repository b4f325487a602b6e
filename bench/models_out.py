"""Models out: what exporting a trained network costs, beside the reference in the same run.

    .venv/bin/python bench/models_out.py [--runs 20] [--repeats 3]

Figures (targets from the models-out issue):
- export of case (d) of bench/engine_vs_torch.py, 784-1024-1024-10 (1.86 M parameters, float64), from
  the model as the store keeps it (JSON lists) to ONNX bytes, checked by onnx.checker (≤ 0.5 s),
  beside PyTorch's own `torch.onnx.export` of the same Sequential; and to safetensors;
- the MLflow worker's cost per run with the run's model logged against without (MLFLOW_LOG_MODELS
  off), on `--runs` succeeded jobs of the post's 2-2-1 network, against a real MLflow server.
The training path does not change (the model is logged by the MLflow worker): bench/service.py's
tiny-jobs rate says so.
"""

from __future__ import annotations

import argparse
import io
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import export
from services.migrate import upgrade
from services.settings import Settings
from services.store import jobs
from services.store.db import session_factory
from tests.support.services import MlflowServer

SIZES = [784, 1024, 1024, 10]
SPEC_D = {"model": {"layers": [{"units": 1024, "activation": "relu"}, {"units": 1024, "activation": "relu"},
                               {"units": 10, "activation": "softmax"}]},
          "loss": "cross_entropy", "data": {"builtin": "digits"}, "dtype": "float64"}
TINY = {"model": {"layers": [{"units": 2, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
        "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 100, "record": {"every": 1}}


def stored_model(rng: np.random.Generator) -> dict:
    """Case (d)'s weights as the store holds a job's model: JSON lists."""
    weights = [rng.normal(0, (2 / n_in) ** 0.5, size=(n_out, n_in)) for n_in, n_out in itertools.pairwise(SIZES)]
    return {"weights": [w.tolist() for w in weights], "biases": [np.zeros(n).tolist() for n in SIZES[1:]]}


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def torch_export_seconds(model: dict, repeats: int) -> float:
    import torch

    network = eval(export.sequential_source(SPEC_D, SIZES[0]), {"nn": torch.nn})
    with torch.no_grad():
        for i in range(3):
            network[2 * i].weight.copy_(torch.tensor(model["weights"][i], dtype=torch.float64))
            network[2 * i].bias.copy_(torch.tensor(model["biases"][i], dtype=torch.float64))

    def work() -> None:
        torch.onnx.export(network, torch.zeros(1, SIZES[0], dtype=torch.float64), io.BytesIO(), dynamo=False, input_names=["x"],
                          output_names=["probabilities"], dynamic_axes={"x": {0: "batch"}})

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return best_of(repeats, work)


def mirror_seconds(tracking_uri: str, runs: int, log_models: bool, workdir: Path) -> float:
    """Seconds of one mirror pass over `runs` succeeded jobs (their runs made, points sent, artifacts, finished)."""
    from worker.mlflow.mirror import mirror_pass
    from worker.training import train

    url = f"sqlite:///{Path(tempfile.mkdtemp(dir=workdir)) / 'store.db'}"
    upgrade(url)
    settings = Settings(database_url=url, mlflow_tracking_uri=tracking_uri, mlflow_log_models=log_models, flush_seconds=0.05,
                        bplab_queue=f"bench-models-{log_models}")
    sessions = session_factory(url)
    for i in range(runs):
        with sessions.begin() as s:
            job_id = jobs.create_job(s, {**TINY, "seed": i}, total_steps=100, n_params=9, experiment=f"bench-models-{log_models}").id
        train(job_id, settings)
    started = time.perf_counter()
    done = {}
    while len(done) < runs:
        done.update({k: v for k, v in mirror_pass(settings, batch=runs).items() if v == "synced"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = stored_model(np.random.default_rng(0))
    onnx_s = best_of(args.repeats, lambda: export.onnx_bytes(SPEC_D, model))
    size = len(export.onnx_bytes(SPEC_D, model))
    safetensors_s = best_of(args.repeats, lambda: export.safetensors_bytes(SPEC_D, model))
    torch_s = torch_export_seconds(model, args.repeats)
    print(f"(d) 784-1024-1024-10 float64, 1.86 M parameters, best of {args.repeats}:")
    print(f"  ONNX export (stored JSON model -> checked bytes, {size / 1e6:.1f} MB): {onnx_s:.3f} s   target <= 0.5 s: "
          f"{'met' if onnx_s <= 0.5 else 'NOT met'}")
    print(f"  torch.onnx.export of the same Sequential (reference): {torch_s:.3f} s   ours/torch = {onnx_s / torch_s:.2f}")
    print(f"  safetensors export: {safetensors_s:.3f} s")
    server = MlflowServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
            mirror_seconds(server.url, 2, True, Path(tmp))  # imports, the server's first requests
            without, with_model = [], []
            for _ in range(args.repeats):  # interleaved, so drift on a noisy machine falls on both
                without.append(mirror_seconds(server.url, args.runs, False, Path(tmp)))
                with_model.append(mirror_seconds(server.url, args.runs, True, Path(tmp)))
            without, with_model = statistics.median(without), statistics.median(with_model)
    finally:
        server.stop()
    per_off, per_on = without / args.runs * 1000, with_model / args.runs * 1000
    print(f"MLflow worker, {args.runs} succeeded runs of the post's network (100 points each), median of {args.repeats}:")
    print(f"  without the model: {per_off:.0f} ms a run; with it logged: {per_on:.0f} ms a run  "
          f"(x{per_on / per_off:.2f}, +{per_on - per_off:.0f} ms a run)")


if __name__ == "__main__":
    main()
