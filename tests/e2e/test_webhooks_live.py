"""Webhooks through the running service: the API registers one, a Celery training worker ends a job,
and the maintenance worker (Celery beat's `deliver_webhooks`) POSTs the signed `job.ended` to a real
receiver on loopback."""

from __future__ import annotations

import json
import time

import pytest

from services.webhooks.signing import HEADER, verify
from tests.support.databases import running_stack
from tests.support.receiver import Receiver
from tests.support.specs import moons
from tests.support.waiting import wait_status


@pytest.fixture(scope="module")
def hooked_stack(redis_server, tmp_path_factory):
    yield from running_stack("sqlite", redis_server.url, tmp_path_factory, beat=True,
                             env_overrides={"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_SECONDS": "0.5"})


def test_the_maintenance_worker_delivers_a_jobs_end(hooked_stack):
    receiver = Receiver()
    try:
        with hooked_stack.client() as api:
            hook = api.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["job.ended"]}).json()
            job = api.post("/api/v1/jobs", json=moons(epochs=1)).json()
            wait_status(api, job["id"], {"succeeded"})
            deadline = time.monotonic() + 60
            while not receiver.received:
                assert time.monotonic() < deadline, "no delivery within a minute"
                time.sleep(0.2)
            log = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
        headers, body = receiver.received[0]
        assert verify(hook["secret"], headers[HEADER], body, int(time.time()))
        assert json.loads(body)["job"] == {"id": job["id"], "name": None, "experiment": "default", "sweep_id": None, "status": "succeeded",
                                           "summary": json.loads(body)["job"]["summary"], "error": None}
        deadline = time.monotonic() + 10
        while log[0]["state"] != "delivered" and time.monotonic() < deadline:
            time.sleep(0.2)
            with hooked_stack.client() as api:
                log = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
        assert [(d["event"], d["state"], d["attempts"]) for d in log] == [("job.ended", "delivered", 1)]
    finally:
        receiver.close()
