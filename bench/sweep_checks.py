"""How long the API takes to check a sweep over a large inline dataset before anything is queued
(the limits issue: a 16 MB sweep with an 11-point grid once took 53-55 s; target: a 500-point grid
answers within a second, or is refused by size). The app in this process on SQLite, timed per
request, beside one plain job submission of the same data (the floor: parsing and checking the
data once).

    .venv/bin/python bench/sweep_checks.py [--rows 190000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.api import create_app
from services.migrate import upgrade
from services.settings import Settings


def app_client(directory: Path) -> httpx.Client:
    url = f"sqlite:///{directory / 'bench.sqlite'}"
    upgrade(url)
    settings = Settings(database_url=url, redis_url="redis://127.0.0.1:1/0", mlflow_tracking_uri="", max_samples=1_000_000,
                        max_request_bytes=64 * 1024 * 1024, max_sweep_jobs=1000, submit_rate_limit="100000/second",
                        max_owner_bytes=10**15)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://127.0.0.1", timeout=600)


def timed(client: httpx.Client, path: str, body: bytes, repeats: int) -> tuple[float, int]:
    seconds, status = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
        seconds.append(time.perf_counter() - start)
        status = answer.status_code
        if status >= 400:
            print(f"  {path}: {status} {answer.text[:300]}")
    return statistics.median(seconds), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=190_000)
    parser.add_argument("--columns", type=int, default=4, help="inputs per row (4 unrounded floats: ~16 MB of JSON)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.columns)).tolist()
    y = (rng.random(args.rows) > 0.5).astype(int).tolist()
    base = {"model": {"layers": [{"units": 8, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"X": X, "y": y}, "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 100, "epochs": 1,
            "record": {"every": 1000}}
    grids = {
        "11-point lr grid": {"optimizer.lr": [round(0.001 * 2**i, 6) for i in range(11)]},
        "500-point grid (lr × batch × units)": {"optimizer.lr": [round(0.001 * 1.5**i, 6) for i in range(10)],
                                                "batch_size": [32, 64, 100, 128, 256],
                                                "model.layers[0].units": [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]},
    }
    with tempfile.TemporaryDirectory() as directory, app_client(Path(directory)) as client:
        job = json.dumps(base).encode()
        print(f"inline data: {args.rows:,} rows × {args.columns} ({len(job) / 1e6:.1f} MB of JSON); median of {args.repeats}")
        floor, status = timed(client, "/api/v1/jobs", job, args.repeats)
        print(f"{'one job (the floor)':<40} {floor:7.2f} s   ({status})")
        for name, space in grids.items():
            body = json.dumps({"base": base, "space": space, "max_parallel": 1}).encode()
            seconds, status = timed(client, "/api/v1/sweeps", body, args.repeats)
            print(f"{name:<40} {seconds:7.2f} s   ({status})  {seconds / floor:5.1f}× one job   target ≤ 1 s")


if __name__ == "__main__":
    main()
