"""Metric storage: our chunked layout against one row per point, on PostgreSQL (and SQLite).

Writes KEYS x STEPS points for one job through `services.store.metrics.write_chunks` (the worker's path)
and, as the reference, the same points as one row per point (PostgreSQL COPY); prints ingest rate,
bytes per point on disk and the time to read one key back.

    .venv/bin/python bench/store.py [--keys 40] [--steps 50000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from services.migrate import upgrade
from services.store import jobs, metrics
from services.store.db import get_engine, session_factory
from services.store.metrics import Chunk
from services.store.models import CHUNK_POINTS


def chunked(url: str, keys: int, steps: int) -> dict:
    upgrade(url)
    sessions = session_factory(url)
    rng = np.random.default_rng(0)
    with sessions() as s:
        job_id = jobs.create_job(s, {}, total_steps=steps, n_params=0).id
        s.commit()
    series = {f"grad_norm/dense_{k}.weight": rng.random(steps) for k in range(keys)}
    t0 = time.perf_counter()
    with sessions() as s:
        for key, values in series.items():
            chunks = [Chunk(key, i, list(range(a, min(a + CHUNK_POINTS, steps))), values[a:a + CHUNK_POINTS].tolist())
                      for i, a in enumerate(range(0, steps, CHUNK_POINTS))]
            metrics.write_chunks(s, job_id, chunks)
        s.commit()
    ingest = time.perf_counter() - t0
    size = table_bytes(url, "metric_chunks")
    one_key = next(iter(series))
    with sessions() as s:
        metrics.read(s, job_id, [one_key])
        t0 = time.perf_counter()
        for _ in range(5):
            got = metrics.read(s, job_id, [one_key])
        read = (time.perf_counter() - t0) / 5
    assert np.array_equal(got[one_key][1], series[one_key])
    return {"ingest_points_per_s": keys * steps / ingest, "bytes_per_point": size / (keys * steps), "read_one_key_ms": read * 1e3}


def rows_reference(url: str, keys: int, steps: int) -> dict:
    """One row per point (job, key, step, value) with a primary key on the first three, via COPY."""
    import psycopg

    raw = url.replace("postgresql+psycopg://", "postgresql://")
    table = f"bench_points_{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (job_id int, key text, step int, value float8, PRIMARY KEY (job_id, key, step))")
        try:
            t0 = time.perf_counter()
            with conn.cursor().copy(f"COPY {table} (job_id, key, step, value) FROM STDIN") as copy:
                for k in range(keys):
                    key = f"grad_norm/dense_{k}.weight"
                    for step, value in enumerate(rng.random(steps).tolist()):
                        copy.write_row((1, key, step, value))
            ingest = time.perf_counter() - t0
            conn.execute(f"ANALYZE {table}")
            size = conn.execute(f"SELECT pg_total_relation_size('{table}')").fetchone()[0]
            query = f"SELECT step, value FROM {table} WHERE job_id = 1 AND key = 'grad_norm/dense_0.weight' ORDER BY step"
            conn.execute(query).fetchall()
            t0 = time.perf_counter()
            for _ in range(5):
                conn.execute(query).fetchall()
            read = (time.perf_counter() - t0) / 5
        finally:
            conn.execute(f"DROP TABLE {table}")
    return {"ingest_points_per_s": keys * steps / ingest, "bytes_per_point": size / (keys * steps), "read_one_key_ms": read * 1e3}


def table_bytes(url: str, table: str) -> int:
    engine = get_engine(url)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return conn.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar()
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        return int(conn.execute(text("SELECT SUM(pgsize) FROM dbstat WHERE name = :t OR name LIKE :i"),
                                {"t": table, "i": f"sqlite_autoindex_{table}%"}).scalar() or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=40)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    import psycopg

    name = f"bplab_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    pg_url = args.postgres.rsplit("/", 1)[0] + "/" + name
    print(f"{args.keys} keys x {args.steps:,} steps = {args.keys * args.steps:,} points\n")
    print(f"{'layout':<42}{'ingest pts/s':>14}{'bytes/pt':>10}{'read 1 key ms':>15}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = [("PostgreSQL, chunks of 1,000 (ours)", chunked(pg_url, args.keys, args.steps)),
                       ("PostgreSQL, one row per point (COPY)", rows_reference(pg_url, args.keys, args.steps)),
                       ("SQLite WAL, chunks of 1,000 (ours)", chunked(f"sqlite:///{tmp}/bench.db", args.keys, args.steps))]
            for label, r in results:
                print(f"{label:<42}{r['ingest_points_per_s']:>14,.0f}{r['bytes_per_point']:>10.1f}{r['read_one_key_ms']:>15.1f}")
    finally:
        get_engine.cache_clear()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
