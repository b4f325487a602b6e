"""One owner's queue does not hold another's job back, with real Celery workers (AUTH=on): while
alice's sweep of many jobs queues behind the one worker, bob's single job starts before almost all
of them, though it was queued after them all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.services import ROOT, Stack, wait_for
from tests.support.specs import SEED, moons
from tests.support.waiting import wait_status


def test_another_owners_job_starts_before_a_queue_of_one_owners_jobs(redis_server, tmp_path):
    stack = Stack(f"sqlite:///{tmp_path / 'db.sqlite'}", redis_server.url, env_overrides={"AUTH": "on"}, workers=1).start()
    try:
        tokens = {}
        for owner in ("alice", "bob"):
            made = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "services.api", "tokens", "create", owner],
                                  cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60, check=True)
            tokens[owner] = made.stdout.strip()
        alice = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=30)
        bob = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=30)
        sweep = alice.post("/api/v1/sweeps", json={"base": moons(epochs=60), "space": {"optimizer.lr": [0.01 * i for i in range(1, 21)]},
                                                   "seeds": 1, "max_parallel": 20, "stack": False}).json()
        jobs_of = lambda: alice.get("/api/v1/jobs", params={"sweep_id": sweep["id"], "limit": 100}).json()["jobs"]
        wait_for(lambda: any(j["status"] != "queued" for j in jobs_of()), 60, what="alice's first job to start")
        mine = bob.post("/api/v1/jobs", json=SEED).json()
        bobs_start = wait_status(bob, mine["id"], {"succeeded"}, 120)["started_at"]
        wait_for(lambda: all(j["status"] == "succeeded" for j in jobs_of()), 300, what="alice's sweep")
        after_bob = [j for j in jobs_of() if j["started_at"] > bobs_start]
        assert len(after_bob) >= 15, [(j["id"], j["started_at"]) for j in jobs_of()]  # bob went before nearly all of alice's queue
    finally:
        stack.stop()
