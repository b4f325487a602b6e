"""Your own data: a 50,000-row × 20-feature CSV with a string label, through a live stack (API,
two training workers, SQLite), as a dataset against the same rows inline.

    .venv/bin/python bench/datasets.py [--rows 50000] [--points 100] [--max-parallel 100]

Figures (targets from the datasets issue), printed side by side:
- the upload's time (the client's `upload_dataset`, through the HTTP server);
- a `--points`-point sweep on it: time to submit (≤ 0.5 s with the dataset), bytes stored for the
  dataset and all its jobs together (≤ 1.1× the CSV's size), and wall time to the sweep's end;
- the same sweep with the rows inline in its base spec (what users did before): the same three.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))

from bplab import Client
from tests.support.services import Stack, wait_for

FEATURES = 20


def write_csv(path: Path, rows: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, FEATURES))
    labels = np.where(X[:, :3].sum(axis=1) > 0, "accepted", "rejected")
    header = ",".join([f"f{j}" for j in range(FEATURES)] + ["decision"])
    with path.open("w") as out:
        out.write(header + "\n")
        for i in range(rows):
            out.write(",".join(f"{v:.6f}" for v in X[i]) + f",{labels[i]}\n")
    return np.round(X, 6), labels.tolist()


def sweep_body(data: dict, points: int, max_parallel: int) -> dict:
    base = {"model": {"layers": [{"units": 16, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": data, "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 500, "epochs": 1, "record": {"every": 20}}
    return {"base": base, "strategy": "grid", "space": {"optimizer.lr": [float(v) for v in np.geomspace(1e-4, 1.0, points)]},
            "max_parallel": max_parallel}


def stored_bytes(database: str, sweep_id: int, dataset_id: int | None) -> int:
    """What the store keeps of the sweep's jobs' specs and sweep request, and of the dataset they name."""
    engine = create_engine(database)
    with engine.connect() as c:
        specs = c.execute(text("SELECT SUM(LENGTH(p.spec)) FROM job_payloads p JOIN jobs j ON j.id = p.job_id "
                               "WHERE j.sweep_id = :s"), {"s": sweep_id}).scalar() or 0
        request = c.execute(text("SELECT LENGTH(request) FROM sweeps WHERE id = :s"), {"s": sweep_id}).scalar() or 0
        blob = c.execute(text("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM dataset_blobs WHERE dataset_id = :d"),
                         {"d": dataset_id or 0}).scalar() or 0
    return int(specs) + int(request) + int(blob)


def run_sweep(client: Client, body: dict, database: str, dataset_id: int | None) -> tuple[float, int, float]:
    started = time.perf_counter()
    sweep = client.sweep(body)
    submitted = time.perf_counter() - started
    wait_for(lambda: client.get_sweep(sweep["id"])["status"] in ("finished", "cancelled"), 3600, interval=1.0,
             what="the sweep to end")
    ended = time.perf_counter() - started
    return submitted, stored_bytes(database, sweep["id"], dataset_id), ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--max-parallel", type=int, default=100, help="the sweep's max_parallel (jobs created by the submission itself)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bplab-datasets-"))
    csv = folder / "applications.csv"
    X, labels = write_csv(csv, args.rows)
    size = csv.stat().st_size
    database = f"sqlite:///{folder / 'db.sqlite'}"
    stack = Stack(database, args.redis, workers=2, beat=True, env_overrides={
        "MAX_REQUEST_BYTES": str(256 * 2**20), "SUBMIT_RATE_LIMIT": "100000/minute", "MAX_OWNER_BYTES": str(2**40)}).start()
    try:
        with Client(stack.url, timeout=600) as client:
            started = time.perf_counter()
            dataset = client.upload_dataset(csv, name="applications.csv")
            upload = time.perf_counter() - started
            print(f"{args.rows:,} rows x {FEATURES} features + a string label: CSV {size / 1e6:.1f} MB; upload {upload:.2f} s "
                  f"(stored {dataset['bytes'] / 1e6:.1f} MB)")
            named = sweep_body({"dataset": dataset["id"], "target": "decision"}, args.points, args.max_parallel)
            with_data = run_sweep(client, named, database, dataset["id"])
            y = [1 if v == "rejected" else 0 for v in labels]  # the classes in sorted order: accepted 0, rejected 1
            inline = run_sweep(client, sweep_body({"X": X.tolist(), "y": y}, args.points, args.max_parallel), database, None)
    finally:
        stack.stop()
    print(f"{args.points}-point sweep, max_parallel {args.max_parallel}   with the dataset    rows inline    inline/dataset")
    print(f"  time to submit        {with_data[0]:10.2f} s      {inline[0]:10.2f} s    {inline[0] / with_data[0]:8.1f}x   "
          f"target <= 0.5 s: {'met' if with_data[0] <= 0.5 else 'NOT met'}")
    print(f"  bytes stored          {with_data[1] / 1e6:10.1f} MB     {inline[1] / 1e6:10.1f} MB   {inline[1] / with_data[1]:8.1f}x   "
          f"{with_data[1] / size:.2f}x the CSV, target <= 1.1x: {'met' if with_data[1] <= 1.1 * size else 'NOT met'}")
    print(f"  wall time to the end  {with_data[2]:10.1f} s      {inline[2]:10.1f} s    {inline[2] / with_data[2]:8.1f}x")


if __name__ == "__main__":
    main()
