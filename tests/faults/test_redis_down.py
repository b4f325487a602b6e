"""Redis stopped (killed: everything it held is lost) for 10 s during a stream of submissions, then
started again, empty: every submission was answered 202, and every one becomes a finished job."""

from __future__ import annotations

import time

import pytest

from tests.support.databases import fault_backend, running_stack
from tests.support.reference import clean_run, point_faults, stored_series
from tests.support.services import Redis

DOWN_AT, UP_AT, STREAM_SECONDS = 3.0, 13.0, 17.0
FAST = {"REAPER_SECONDS": "1", "RESEND_AFTER": "3", "HEARTBEAT_SECONDS": "0.5", "HEARTBEAT_TIMEOUT": "5",
        "SUBMIT_RATE_LIMIT": "100000/minute"}


@pytest.fixture(scope="module")
def private_redis():
    server = Redis(private=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_stack(private_redis, tmp_path_factory):
    yield from running_stack(fault_backend(), private_redis.url, tmp_path_factory, beat=True, env_overrides=FAST)


def spec_for(i: int) -> dict:
    return {"model": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "xor"}, "optimizer": {"name": "sgd", "lr": 0.5}, "batch_size": 4, "steps": 300, "seed": i}


@pytest.mark.timeout(300)
def test_every_202_becomes_a_finished_job_across_a_redis_outage(redis_stack, private_redis):
    accepted, statuses, outbox_while_down = [], [], 0
    with redis_stack.client() as client:
        start, down, i = time.monotonic(), False, 0
        while (now := time.monotonic() - start) < STREAM_SECONDS:
            if not down and DOWN_AT <= now < UP_AT:
                private_redis.pause()
                down = True
            elif down and now >= UP_AT:
                private_redis.resume()
                down = False
            response = client.post("/api/v1/jobs", json=spec_for(i))
            statuses.append(response.status_code)
            if response.status_code == 202:
                accepted.append((response.json()["id"], down))
            if down:
                outbox_while_down = max(outbox_while_down, client.get("/readyz").json()["outbox"])
            i += 1
            time.sleep(0.2)
        assert set(statuses) == {202}, statuses
        during = sum(1 for _, was_down in accepted if was_down)
        assert during >= 20 and outbox_while_down >= during - 1  # submissions went on, into the outbox

        deadline, ended = time.monotonic() + 150, {}
        while time.monotonic() < deadline and len(ended) < len(accepted):
            for job_id, _ in accepted:
                if job_id not in ended:
                    job = client.get(f"/api/v1/jobs/{job_id}", params={"include": "spec"}).json()
                    if job["status"] not in ("queued", "running"):
                        ended[job_id] = job
            time.sleep(0.5)
        lost = [job_id for job_id, _ in accepted if ended.get(job_id, {}).get("status") != "succeeded"]
        faults = [point_faults(stored_series(client, job_id), clean_run(spec_for_job)["metrics"])
                  for job_id, spec_for_job in ((j, ended[j]["spec"]) for j in ended)]
        duplicated, missing = sum(d for d, _ in faults), sum(m for _, m in faults)
        figures = (f"{redis_stack.backend}: submitted={len(statuses)} accepted={len(accepted)} accepted_while_down={during} "
                   f"succeeded={len(accepted) - len(lost)} lost={len(lost)} duplicated_points={duplicated} missing_points={missing}")
        print(figures)
        assert not lost and duplicated == 0 and missing == 0, figures + "\n" + redis_stack.logs()[-5000:]
        assert client.get("/readyz").json()["outbox"] == 0
