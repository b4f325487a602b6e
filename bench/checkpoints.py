"""The cost of checkpoints: encoding a trainer's full state and writing it to the store, against
the training steps between two checkpoints, for the benchmark cases with Adam (three arrays per
parameter: weights and both moments), on SQLite and, when it answers, PostgreSQL.

    .venv/bin/python bench/checkpoints.py [--every 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_vs_torch import CASES, case_data, engine_spec, time_engine

from engine.problem import plan
from engine.spec import parse_spec
from engine.training import Trainer
from services.migrate import upgrade
from services.store import checkpoints, jobs
from services.store.db import session_factory
from tests.support.services import create_postgres_database, drop_postgres_database, postgres_available


def adam(spec: dict) -> dict:
    return {**spec, "optimizer": {"name": "adam", "lr": 1e-3}}


def checkpoint_ms(database_url: str, spec: dict, repeats: int) -> tuple[float, float, int]:
    """Median ms to take the state and encode it, and to write it (one transaction); bytes."""
    sessions = session_factory(database_url)
    trainer = Trainer(spec)
    for _ in range(3):
        trainer.train_step()
    sizes = plan(parse_spec(spec))
    with sessions() as s:
        job_id = jobs.create_job(s, {}, total_steps=sizes.total_steps, n_params=sizes.n_params).id
        s.commit()
    encode, write, size = [], [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = trainer.state_dict()
        data = checkpoints.encode(state)
        t1 = time.perf_counter()
        with sessions() as s:
            checkpoints.save(s, job_id, state)  # encodes again inside; subtract the encode time measured above
            s.commit()
        t2 = time.perf_counter()
        encode.append((t1 - t0) * 1e3)
        write.append((t2 - t1) * 1e3 - (t1 - t0) * 1e3)
        size = len(data)
    return statistics.median(encode), max(0.0, statistics.median(write)), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1000, help="CHECKPOINT_EVERY")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    stores = {"sqlite": f"sqlite:///{tempfile.mkdtemp(prefix='bench-ckpt-')}/store.db"}
    if postgres_available():
        stores["postgresql"] = create_postgres_database()
    try:
        for url in stores.values():
            upgrade(url)
        print(f"checkpoint every {args.every} steps; Adam; float32; median of {args.repeats}")
        print(f"{'case':>4} {'params':>10} {'MB':>7} {'step µs':>9} {'store':>10} {'encode ms':>10} {'write ms':>9} {'overhead':>9}")
        for name in ("b", "c", "d"):
            case = CASES[name]
            X, y = case_data(case, np.random.default_rng(0))
            spec = adam(engine_spec(case, X, y, "float32", every=10**9, gradients="none", steps=10**6))
            step_us = time_engine({**spec, "steps": 60}, 50)
            n_params = plan(parse_spec(spec)).n_params
            for store, url in stores.items():
                enc, write, size = checkpoint_ms(url, spec, args.repeats)
                overhead = (enc + write) * 1e3 / (args.every * step_us)
                print(f"{name:>4} {n_params:>10,} {size / 1e6:>7.2f} {step_us:>9.1f} {store:>10} {enc:>10.2f} {write:>9.2f} {overhead:>8.2%}")
    finally:
        if "postgresql" in stores:
            drop_postgres_database(stores["postgresql"])


if __name__ == "__main__":
    main()
