"""The stack as separate hosts (tests/support/hosts.py: a network namespace and an empty directory each), and
what it survives: partitions, a host lost, clocks two minutes apart. Each scenario trains a mix of single jobs
and a stacked sweep and checks them the same way: every accepted job ends exactly once, no step is recorded by
two attempts, every finished job's loss series and final weights are bitwise its clean run's, every MLflow run
is complete, nothing is left queued. Then the figures: jobs per second with one training host and with two,
and the time from a host's loss to its jobs running elsewhere.

    .venv/bin/python -m bench.hosts            # every scenario at full length (partitions of 30 s, a minute)
    .venv/bin/python -m bench.hosts --quick    # each small and short (about ten minutes in all)
    .venv/bin/python -m bench.hosts --only host_loss,skewed_clocks

Needs root (network namespaces); says why and stops where it cannot make them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from tests.support.hosts import Hosts, available
from tests.support.reference import clean_run, point_faults, stored_series
from tests.support.services import wait_for

RECOVERY = {"HEARTBEAT_SECONDS": "0.5", "HEARTBEAT_TIMEOUT": "4", "REAPER_SECONDS": "1", "CHECKPOINT_EVERY": "500",
            "MAX_ATTEMPTS": "20", "RESEND_AFTER": "4", "FLUSH_SECONDS": "0.3", "DB_RETRY_SECONDS": "120",
            "SUBMIT_RATE_LIMIT": "100000/minute", "MLFLOW_WORKER_NICE": "0"}
TERMINAL = {"succeeded", "failed", "diverged", "cancelled"}
SKEW = 120


def job_spec(seed: int, steps: int, units: tuple[int, ...] = (8,), every: int = 10) -> dict:
    layers = [{"units": u, "activation": "tanh"} for u in units] + [{"units": 1, "activation": "sigmoid"}]
    return {"model": {"layers": layers}, "loss": "bce", "data": {"builtin": "moons", "n_samples": 64}, "optimizer": {"name": "adam",
            "lr": 0.02}, "batch_size": 8, "steps": steps, "seed": seed, "record": {"every": every}}


@dataclass
class Outcome:
    scenario: str
    accepted: int
    ended: int
    lost: int
    twice: int
    bit_equal: int
    mlflow_complete: int | None
    note: str = ""
    recovered_s: float | None = None  # a lost host's jobs to running elsewhere (or reclaimed), where one was lost


@dataclass
class Size:
    singles: int
    steps: int
    sweep_points: int
    partition_seconds: float
    mlflow_seconds: float


QUICK, FULL = Size(4, 6000, 4, 10, 20), Size(8, 20000, 6, 30, 60)


def submit_mix(client: httpx.Client, size: Size, seed: int) -> list[int]:
    """Single jobs and a grid sweep whose points share a shape (one stack); every accepted job's id."""
    ids = [client.post("/api/v1/jobs", json=job_spec(seed + i, size.steps)).json()["id"] for i in range(size.singles)]
    sweep = client.post("/api/v1/sweeps", json={"name": f"hosts-{seed}", "base": job_spec(seed, size.steps), "strategy": "grid",
                                                "space": {"optimizer.lr": [0.005 * (k + 1) for k in range(size.sweep_points)]}})
    assert sweep.status_code == 202, sweep.text
    return ids + [job["id"] for job in sweep.json()["jobs"]]


def jobs_of(client: httpx.Client, ids: list[int]) -> list[dict]:
    return [client.get(f"/api/v1/jobs/{job_id}", params={"include": "spec"}).json() for job_id in ids]


def wait_ended(client: httpx.Client, ids: list[int], timeout: float) -> None:
    wait_for(lambda: all(j["status"] in TERMINAL for j in jobs_of(client, ids)), timeout, interval=1.0, what=f"{len(ids)} jobs to end")


def running(client: httpx.Client, ids: list[int]) -> list[dict]:
    return [j for j in jobs_of(client, ids) if j["status"] == "running"]


def check(hosts: Hosts, client: httpx.Client, name: str, ids: list[int], mirrored: bool, note: str = "") -> Outcome:
    """The checks every scenario ends with (the MLflow runs waited for when the mirror runs)."""
    wait_ended(client, ids, 600)
    jobs = jobs_of(client, ids)
    ended = sum(j["status"] in TERMINAL for j in jobs)
    lost = sum(j["status"] != "succeeded" for j in jobs)
    twice = equal = 0
    for job in jobs:
        expected, stored = clean_run(job["spec"]), stored_series(client, job["id"])
        duplicated, _ = point_faults(stored, expected["metrics"])
        twice += duplicated > 0
        model = client.get(f"/api/v1/jobs/{job['id']}/model").json()
        equal += stored["loss"] == expected["metrics"]["loss"] and model.get("weights") == expected["model"]["weights"]
    complete = None
    if mirrored:
        def synced() -> bool:
            return all(j["mlflow"]["state"] == "synced" for j in jobs_of(client, ids))
        wait_for(synced, 300, interval=1.0, what="every run complete in MLflow")
        complete = sum(_mlflow_finished(hosts, j["mlflow"]["run_id"]) for j in jobs_of(client, ids))
    queued = int(hosts.exec("broker", ["redis-cli", "-h", hosts.hosts["broker"].ip, "llen", "bplab"]).stdout.strip() or 0)
    if queued:
        note += f" {queued} messages left queued"
    return Outcome(name, len(ids), ended, lost, twice, equal, complete, note.strip())


def _mlflow_finished(hosts: Hosts, run_id: str) -> bool:
    with hosts.mlflow() as mlflow:
        run = mlflow.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()["run"]
    return run["info"]["status"] == "FINISHED" and any(m["key"] == "loss" for m in run["data"].get("metrics", []))


def long_jobs(client: httpx.Client, size: Size, seed: int) -> list[int]:
    """Two jobs of several seconds, one training on each host (each takes one job at a time) when this returns."""
    long = [client.post("/api/v1/jobs", json=job_spec(seed + i, size.steps * 30, every=100)).json()["id"] for i in range(2)]
    wait_for(lambda: len(running(client, long)) == 2, 60, interval=0.2, what="both training hosts busy")
    return long


# -- the scenarios ------------------------------------------------------------------------------------

def redis_partition(hosts: Hosts, client: httpx.Client, size: Size) -> Outcome:
    """1. w1 cut off from Redis for a while mid-job, then healed."""
    ids = long_jobs(client, size, 100) + submit_mix(client, size, 110)
    hosts.partition("w1", "broker")
    time.sleep(size.partition_seconds)
    hosts.heal("w1", "broker")
    return check(hosts, client, "w1 cut from Redis", ids, True, f"{size.partition_seconds:g} s")


def db_partition(hosts: Hosts, client: httpx.Client, size: Size) -> Outcome:
    """2. w1 cut off from PostgreSQL for longer than the heartbeat timeout while it trains: its jobs are reclaimed
    and finished by w2; back, its late writes are refused by the lease."""
    long = long_jobs(client, size, 200)
    ids = long + submit_mix(client, size, 210)
    hosts.partition("w1", "db")
    cut = float(RECOVERY["HEARTBEAT_TIMEOUT"]) * 3
    time.sleep(cut)
    hosts.heal("w1", "db")
    outcome = check(hosts, client, "w1 cut from PostgreSQL", ids, True)
    reclaimed = sum(job["attempt"] > 1 for job in jobs_of(client, ids))
    refused = (hosts.hosts["w1"].dir / "worker.log").read_text().count("'lease lost'")  # its task's answer: it stopped unwritten
    outcome.note = f"{cut:g} s; jobs reclaimed by w2: {reclaimed}; w1's late writes refused by the lease: {refused}"
    return outcome


def host_loss(hosts: Hosts, client: httpx.Client, size: Size) -> Outcome:
    """3. Every process of w2 killed at once while it trains a stack; how long until its jobs run elsewhere."""
    hosts.kill_host("w1")  # the stack goes to w2; w1 comes back while it trains
    sweep = client.post("/api/v1/sweeps", json={"name": "hosts-loss", "base": job_spec(300, size.steps * 30, every=100),
                                                "strategy": "grid",
                                                "space": {"optimizer.lr": [0.004 * (k + 1) for k in range(size.sweep_points)]}}).json()
    ids = [job["id"] for job in sweep["jobs"]]
    wait_for(lambda: len(running(client, ids)) == len(ids), 90, interval=0.1, what="the stack under way on w2")
    hosts.start_worker("w1")
    hosts.wait_worker("w1")
    assert len(running(client, ids)) == len(ids), "the stack ended before w1 was back: make it longer"
    hosts.kill_host("w2")
    lost_at = time.monotonic()
    wait_for(lambda: all(j["attempt"] >= 2 and j["status"] != "queued" for j in jobs_of(client, ids)), 120, interval=0.1,
             what="the lost host's jobs running elsewhere")
    moved = time.monotonic() - lost_at
    hosts.start_worker("w2")
    outcome = check(hosts, client, "w2 lost (every process)", ids, True, f"its stack running on w1 {moved:.1f} s later")
    outcome.recovered_s = moved
    return outcome


def api_broker_partition(hosts: Hosts, client: httpx.Client, size: Size) -> Outcome:
    """4. The API cut off from Redis while clients submit: every 202 is trained (the outbox hands it on)."""
    hosts.partition("api", "broker")
    ids = []
    for i in range(size.singles * 2):
        answer = client.post("/api/v1/jobs", json=job_spec(400 + i, size.steps // 2))
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    time.sleep(size.partition_seconds)
    hosts.heal("api", "broker")
    return check(hosts, client, "api cut from Redis", ids, True, f"{len(ids)} submitted while cut off")


def mirror_partition(hosts: Hosts, client: httpx.Client, size: Size) -> Outcome:
    """5. The MLflow worker cut off from MLflow: training unaffected; the runs complete after."""
    hosts.partition("mirror", "mlflow")
    started = time.monotonic()
    ids = submit_mix(client, size, 500)
    wait_ended(client, ids, 300)
    trained = time.monotonic() - started
    time.sleep(max(0.0, size.mlflow_seconds - trained))
    hosts.heal("mirror", "mlflow")
    return check(hosts, client, "mirror cut from MLflow", ids, True, f"trained in {trained:.0f} s while cut off")


def skewed_clocks(hosts: Hosts, client: httpx.Client, size: Size) -> Outcome:
    """6. w1's clock 120 s slow and w2's 120 s fast for a whole run with a kill: no live job reaped, the dead one's
    reclaimed within the heartbeat timeout plus a reaper period."""
    for name, offset in (("w1", -SKEW), ("w2", SKEW)):
        hosts.kill_host(name)
        hosts.hosts[name].clock_offset = offset
        hosts.start_worker(name)
    for name in ("w1", "w2"):
        hosts.wait_worker(name)
    long = long_jobs(client, size, 600)
    ids = long + submit_mix(client, size, 610)
    time.sleep(float(RECOVERY["HEARTBEAT_TIMEOUT"]) * 2)  # the slow host's beats, by its clock minutes old, keep it alive
    reaped_alive = sum(j["attempt"] > 1 for j in jobs_of(client, ids))
    hosts.kill_host("w2")  # the fast host lost: by its clock, its last beat is two minutes ahead
    lost_at = time.monotonic()
    before = {j["id"]: j["attempt"] for j in jobs_of(client, ids)}
    # reclaimed: the reaper requeues it (w1, busy with its own long job, trains it after)
    wait_for(lambda: any(j["status"] == "queued" or j["attempt"] > before[j["id"]] for j in jobs_of(client, long)), 60,
             interval=0.1, what="the lost host's job requeued")
    reclaimed = time.monotonic() - lost_at
    outcome = check(hosts, client, "clocks 120 s slow and fast, w2 lost", ids, True,
                    f"live jobs reaped: {reaped_alive}; the dead host's reclaimed in {reclaimed:.1f} s "
                    f"(bound {float(RECOVERY['HEARTBEAT_TIMEOUT']) + float(RECOVERY['REAPER_SECONDS']):g} s + a pass)")
    outcome.recovered_s = reclaimed
    for name in ("w1", "w2"):
        hosts.kill_host(name)
        hosts.hosts[name].clock_offset = None
        hosts.start_worker(name)
    for name in ("w1", "w2"):
        hosts.wait_worker(name)
    return outcome


def throughput(hosts: Hosts, client: httpx.Client, jobs: int) -> tuple[float, float]:
    """Jobs per second of training-bound jobs (2-16-16-1, 5,000 steps) with one training host, then with two."""
    rates = []
    for hosts_up in (1, 2):
        hosts.kill_host("w2")
        if hosts_up == 2:
            hosts.start_worker("w2")
            hosts.wait_worker("w2")
        started = time.monotonic()
        ids = [client.post("/api/v1/jobs", json=job_spec(700 + 10 * hosts_up + i, 5000, (16, 16), every=100)).json()["id"] for i in range(jobs)]
        wait_ended(client, ids, 900)
        rates.append(jobs / (time.monotonic() - started))
    return rates[0], rates[1]


SCENARIOS: dict[str, Callable[[Hosts, httpx.Client, Size], Outcome]] = {
    "redis_partition": redis_partition, "db_partition": db_partition, "host_loss": host_loss,
    "api_broker_partition": api_broker_partition, "mirror_partition": mirror_partition, "skewed_clocks": skewed_clocks}


def run(names: list[str], size: Size, throughput_jobs: int) -> tuple[list[Outcome], dict[str, float]]:
    """The scenarios on one freshly made set of hosts; their outcomes and the figures."""
    outcomes, figures = [], {}
    with Hosts(env=RECOVERY) as hosts:
        try:
            hosts.start()
        except Exception:
            print(hosts.logs(), file=sys.stderr)
            raise
        with hosts.client() as client:
            for name in names:
                started = time.monotonic()
                result = SCENARIOS[name](hosts, client, size)
                if name == "host_loss":
                    figures["host_loss_to_running_elsewhere_s"] = result.recovered_s
                result.note += f" [{time.monotonic() - started:.0f} s]"
                outcomes.append(result)
                print(row(result), flush=True)
            if throughput_jobs:
                one, two = throughput(hosts, client, throughput_jobs)
                figures.update(jobs_per_second_one_host=one, jobs_per_second_two_hosts=two)
    return outcomes, figures


HEADER = f"{'scenario':<40}{'accepted':>9}{'ended':>7}{'lost':>6}{'twice':>7}{'bit-equal':>11}{'mlflow':>8}  note"


def row(o: Outcome) -> str:
    return (f"{o.scenario:<40}{o.accepted:>9}{o.ended:>7}{o.lost:>6}{o.twice:>7}{o.bit_equal:>11}"
            f"{'-' if o.mlflow_complete is None else o.mlflow_complete:>8}  {o.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each scenario small and short")
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--throughput-jobs", type=int, default=None, help="jobs per throughput run (0: skip it)")
    args = parser.parse_args()
    why = available()
    if why:
        print(f"cannot lay the stack out as hosts here: {why}")
        sys.exit(2)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    size = QUICK if args.quick else FULL
    jobs = args.throughput_jobs if args.throughput_jobs is not None else (8 if args.quick else 16)
    print(HEADER, flush=True)
    outcomes, figures = run(names, size, jobs)
    print()
    if "jobs_per_second_two_hosts" in figures:
        one, two = figures["jobs_per_second_one_host"], figures["jobs_per_second_two_hosts"]
        print(f"training-bound jobs (2-16-16-1, 5,000 steps): {one:.3f} jobs/s on one training host, {two:.3f} on two: {two / one:.2f}× "
              "(the two hosts share this machine's two cores with the API, the store and the mirror)")
    if "host_loss_to_running_elsewhere_s" in figures:
        print(f"a host lost to its jobs running elsewhere: {figures['host_loss_to_running_elsewhere_s']:.1f} s")
    print(f"jobs lost: {sum(o.lost for o in outcomes)}; recorded twice: {sum(o.twice for o in outcomes)}")
    sys.exit(0 if all(o.lost == 0 and o.twice == 0 and o.bit_equal == o.accepted for o in outcomes) else 1)


if __name__ == "__main__":
    main()
