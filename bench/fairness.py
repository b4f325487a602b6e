"""One owner's big sweep against another owner's single job, and what a stack holds.

    .venv/bin/python bench/fairness.py [--jobs 400] [--epochs 50]

A stack with AUTH=on and two training processes (as `make up` runs one per core), SQLite, Redis on
127.0.0.1:6379. alice submits a stacked sweep of `--jobs` jobs of 2-256-256-1 ReLU networks with Adam
on 200 moons samples (the attack's shape: ~67k parameters each) with every job queued at once; once
her stacks train, bob submits the post's one-step job. Printed:
- how long bob's job waited to start (created → started; target from the security issue: ≤ 15 s),
  beside the time one of alice's stacks takes (the bound the fair turns promise);
- the members per stack (STACK_MAX_BYTES against the engine's estimate of a member's state) and the
  training processes' peak memory.
The sweep is cancelled once bob's job has run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.problem import plan
from engine.spec import parse_spec
from engine.stacking import state_bytes
from services.settings import Settings
from tests.support.services import BIN, ROOT, Stack, wait_for
from tests.support.specs import SEED


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    base = {"model": {"layers": [{"units": 256, "activation": "relu"}, {"units": 256, "activation": "relu"},
                                 {"units": 1, "activation": "sigmoid"}]},
            "loss": "bce", "data": {"builtin": "moons", "n_samples": 200, "validation_split": 0.2},
            "optimizer": {"name": "adam", "lr": 0.001}, "batch_size": 32, "epochs": args.epochs, "seed": 0, "record": {"every": 50}}
    seeds = 5
    points = args.jobs // seeds
    per_member = state_bytes(parse_spec(base), plan(parse_spec(base)))
    limit = Settings().stack_max_bytes
    folder = Path(tempfile.mkdtemp(prefix="bplab-fair-"))
    stack = Stack(f"sqlite:///{folder / 'db.sqlite'}", args.redis, env_overrides={"AUTH": "on"}, workers=2).start()
    try:
        tokens = {}
        for owner in ("alice", "bob"):
            made = subprocess.run([str(BIN / "flask"), "--app", "services.api", "tokens", "create", owner], cwd=ROOT, env=stack.env,
                                  capture_output=True, text=True, timeout=60, check=True)
            tokens[owner] = made.stdout.strip()
        alice = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=60)
        bob = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=60)
        sweep = alice.post("/api/v1/sweeps", json={"base": base, "space": {"optimizer.lr": [0.0005 + 0.0001 * i for i in range(points)]},
                                                   "seeds": seeds, "max_parallel": args.jobs}).json()
        mine = lambda: alice.get("/api/v1/jobs", params={"sweep_id": sweep["id"], "limit": 500}).json()["jobs"]
        wait_for(lambda: sum(j["status"] == "running" for j in mine()) > 0, 120, interval=0.5, what="alice's first stack")
        time.sleep(2)  # both processes busy with her stacks
        job = bob.post("/api/v1/jobs", json=SEED).json()
        wait_for(lambda: bob.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "succeeded", 600, interval=0.2, what="bob's job")
        done = bob.get(f"/api/v1/jobs/{job['id']}").json()
        waited = (_when(done["started_at"]) - _when(done["created_at"])).total_seconds()
        wait_for(lambda: sum(j["status"] in ("succeeded", "failed", "diverged") for j in mine()) >= 2 * (limit // per_member), 900,
                 interval=1, what="two of alice's stacks")
        ended = [j for j in mine() if j["finished_at"]]
        starts = {}
        for j in ended:
            starts.setdefault(j["started_at"], []).append(j)  # one stack's members start in one claim
        stack_seconds = [(_when(max(m["finished_at"] for m in members)) - _when(members[0]["started_at"])).total_seconds()
                         for members in starts.values()]
        sizes = sorted({len(members) for members in starts.values()})
        peak = 0
        for proc in stack.worker_procs:
            for member in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
                status = Path(f"/proc/{member.pid}/status").read_text()
                peak = max(peak, int(status.split("VmHWM:")[1].split()[0]) * 1024)
        alice.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
        print("| figure | value | target |\n|---|---|---|")
        print(f"| bob's job: created → started, while alice's {args.jobs}-job sweep trains | {waited:.1f} s | ≤ 15 s |")
        print(f"| one of alice's stacks: first start → last finish (of {len(stack_seconds)} ended) | "
              f"{min(stack_seconds):.1f}–{max(stack_seconds):.1f} s | (the bound: one running stack) |")
        print(f"| a member's state (engine estimate) / STACK_MAX_BYTES → members per stack | {per_member / 2**20:.1f} MiB / "
              f"{limit / 2**20:.0f} MiB → {limit // per_member} (seen: {', '.join(map(str, sizes))}) | |")
        print(f"| a training process's peak memory (largest VmHWM) | {peak / 2**20:.0f} MiB | |", flush=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
