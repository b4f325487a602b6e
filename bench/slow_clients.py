"""What other callers meet while an attacker on the same machine holds the API with slow clients.

    .venv/bin/python bench/slow_clients.py [--probes 50] [--reference]

The API as `make up` serves it (services.api.serve, AUTH=on, SQLite, Redis on 127.0.0.1:6379 or the
REDIS_URL given), with two owners. Each figure is the p50/p99/max of `--probes` requests alternating
`/healthz` and bob's `GET /api/v1/jobs`, a request unanswered within 5 s counted as 5 s:
- idle: nothing else open (the floor);
- 200 sockets sending a header line every second and 32 sending alice's bodies a byte a second
  (target from the security issue: p99 ≤ 1 s);
- 200 event streams of alice on one of her queued jobs (target: p99 ≤ 1 s).
`--reference` runs the same attack against the server the API had before (gunicorn, 2 workers × 32
threads, as `make up` ran it), side by side.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.services import BIN, ROOT, Stack, free_port, port_open, wait_for
from tests.support.slow_clients import Trickle, open_streams, p99, probe, trickling
from tests.support.specs import moons

PROBE_TIMEOUT = 5.0


def _tokens(env: dict[str, str]) -> dict[str, str]:
    out = {}
    for owner in ("alice", "bob"):
        made = subprocess.run([str(BIN / "flask"), "--app", "services.api", "tokens", "create", owner], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60, check=True)
        out[owner] = made.stdout.strip()
    return out


def _row(name: str, took: list[float], target: str = "") -> None:
    print(f"| {name} | {statistics.median(took) * 1000:.1f} | {p99(took) * 1000:.1f} | {max(took) * 1000:.1f} | "
          f"{sum(t >= PROBE_TIMEOUT for t in took)} | {target} |", flush=True)


def attack(url: str, port: int, tokens: dict[str, str], probes: int, label: str) -> None:
    client = httpx.Client(base_url=url, timeout=PROBE_TIMEOUT)
    bob = {"Authorization": f"Bearer {tokens['bob']}"}
    requests = [lambda: client.get("/healthz"), lambda: client.get("/api/v1/jobs", headers=bob)]
    wait_for(lambda: all(r().status_code == 200 for r in requests * 4), 60, what=f"{label} to answer")  # every worker up
    _row(f"{label}: idle", probe(requests, probes, PROBE_TIMEOUT))
    with trickling(lambda: Trickle("127.0.0.1", port, 200),
                   lambda: Trickle("127.0.0.1", port, 32, body=True, headers={"Authorization": f"Bearer {tokens['alice']}"})):
        _row(f"{label}: 200 slow headers + 32 slow bodies", probe(requests, probes, PROBE_TIMEOUT), "p99 ≤ 1,000 ms")
    job = client.post("/api/v1/jobs", json=moons(), headers={"Authorization": f"Bearer {tokens['alice']}"}).json()["id"]
    socks, statuses = open_streams("127.0.0.1", port, f"/api/v1/jobs/{job}/events", tokens["alice"], 200)
    try:
        _row(f"{label}: 200 event streams of one owner ({', '.join(f'{n}× {s}' for s, n in sorted(statuses.items()))})",
             probe(requests, probes, PROBE_TIMEOUT), "p99 ≤ 1,000 ms")
    finally:
        for sock in socks:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--reference", action="store_true", help="also attack gunicorn as the API was served before")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bplab-slow-"))
    stack = Stack(f"sqlite:///{folder / 'db.sqlite'}", args.redis, env_overrides={"AUTH": "on"}, workers=0).start()
    print("| server: what is open | p50 ms | p99 ms | max ms | unanswered in 5 s | target |\n|---|---|---|---|---|---|")
    try:
        tokens = _tokens(stack.env)
        attack(stack.url, stack.port, tokens, args.probes, "waitress (ours)")
        if args.reference:
            port = free_port()
            log = open(folder / "gunicorn.log", "w")  # noqa: SIM115 - the server's log for its life
            gunicorn = subprocess.Popen([str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
                                         "--threads", "32", "--workers", "2", "--keep-alive", "30", "services.api.wsgi:app"],
                                        cwd=ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: port_open("127.0.0.1", port), 60, what="gunicorn")
                attack(f"http://127.0.0.1:{port}", port, tokens, min(args.probes, 10), "gunicorn gthread 2×32 (before)")
            finally:
                gunicorn.terminate()
                gunicorn.wait(20)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
