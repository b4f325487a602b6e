"""Webhooks against a real HTTP receiver on loopback: registered through the API (the app in-process),
queued with what makes them happen (a diagnosis written, a job ended), sent by the maintenance
worker's own pass (`deliver_due`): signed as documented, retried with backoff until the receiver
takes it (a receiver that fails twice gets it once), logged per delivery; a dead receiver leaves the
job as it was; hosts the operator did not allow are never called."""

from __future__ import annotations

import json
import time

import pytest

from services.webhooks.signing import HEADER, verify
from tests.support.databases import drop_database
from tests.support.inprocess import http, make_app
from tests.support.problems import assert_problem
from tests.support.receiver import Receiver
from tests.support.specs import dead_relu, moons


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hooked(request, redis_server, tmp_path_factory):
    from tests.support.databases import BACKENDS

    if request.param not in BACKENDS:
        pytest.skip("no PostgreSQL here")
    app, url = make_app(request.param, redis_server.url, tmp_path_factory, webhook_allowed_hosts="127.0.0.1",
                        webhook_retry_seconds=0.05, webhook_max_attempts=4, webhook_timeout_seconds=2)
    yield app
    drop_database(url)


def deliver(app) -> dict[str, int]:
    from worker.webhooks import deliver_due

    return deliver_due(app.config["SETTINGS"])


def train(app, job_id: int) -> str:
    from worker.training import train as train_job

    return train_job(job_id, app.config["SETTINGS"])


def until_settled(app, client, webhook_id: int, seconds: float = 10) -> list[dict]:
    deadline = time.monotonic() + seconds
    while True:
        deliver(app)
        log = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries").json()["deliveries"]
        if all(d["state"] != "pending" for d in log) or time.monotonic() > deadline:
            return log
        time.sleep(0.06)


def test_a_diagnosis_and_the_jobs_end_reach_their_receivers_signed_one_after_two_failures(hooked):
    failing, healthy = Receiver([500, 503]), Receiver()
    try:
        with http(hooked) as client:
            made = client.post("/api/v1/webhooks", json={"url": failing.url, "events": ["dead_units", "layer_dead"]})
            assert made.status_code == 201 and made.headers["Location"] == f"/api/v1/webhooks/{made.json()['id']}"
            hook = made.json()
            ended = client.post("/api/v1/webhooks", json={"url": healthy.url, "events": ["job.ended"]}).json()
            assert hook["secret"].startswith("whsec_") and all("secret" not in w for w in client.get("/api/v1/webhooks").json()["webhooks"])
            job = client.post("/api/v1/jobs", json=dead_relu(1.0)).json()
            assert train(hooked, job["id"]) == "succeeded"
            log = until_settled(hooked, client, hook["id"])
            ended_log = until_settled(hooked, client, ended["id"])
        assert [(d["event"], d["state"], d["attempts"], d["last_status"]) for d in log] == [("dead_units", "delivered", 3, 200)]
        assert len(failing.received) == 3 and len({b for _, b in failing.received}) == 1  # one delivery, one id to keep it once
        assert [h["Bplab-Delivery"] for h, _ in failing.received] == [str(log[0]["id"])] * 3
        assert [(d["event"], d["state"], d["attempts"]) for d in ended_log] == [("job.ended", "delivered", 1)]
        for receiver, secret in ((failing, hook["secret"]), (healthy, ended["secret"])):
            for headers, body in receiver.received:
                assert verify(secret, headers[HEADER], body, int(time.time()))
                assert not verify("whsec_other", headers[HEADER], body, int(time.time()))
        dead = json.loads(failing.received[-1][1])
        assert dead["event"] == "dead_units" and dead["diagnosis"]["layer"] == "dense_1" and dead["job"]["id"] == job["id"]
        end = json.loads(healthy.received[0][1])
        assert end["job"]["status"] == "succeeded" and end["job"]["summary"]["steps_completed"] == 200
    finally:
        failing.close()
        healthy.close()


def test_a_dead_receiver_leaves_the_job_as_it_was_and_ends_failed_in_the_log(hooked):
    receiver = Receiver()
    dead_url = receiver.url
    receiver.close()  # nothing listens there any more
    with http(hooked) as client:
        hook = client.post("/api/v1/webhooks", json={"url": dead_url, "events": ["job.ended"]}).json()
        job = client.post("/api/v1/jobs", json=moons(epochs=1)).json()
        assert train(hooked, job["id"]) == "succeeded"
        log = until_settled(hooked, client, hook["id"])
        assert [(d["state"], d["attempts"], d["last_status"]) for d in log] == [("failed", 4, None)]
        assert "ConnectError" in log[0]["last_error"]
        assert client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "succeeded"
        assert client.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
        assert_problem(client.get(f"/api/v1/webhooks/{hook['id']}/deliveries"), 404, kind="not-found")


def test_only_hosts_the_operator_allows_are_registered(hooked):
    with http(hooked) as client:
        for url, words in (("https://hooks.example.com/x", "not among the hosts"), ("ftp://127.0.0.1/x", "http"),
                           ("http://user:pw@127.0.0.1/x", "credentials")):
            assert_problem(client.post("/api/v1/webhooks", json={"url": url, "events": ["job.ended"]}), 422, field="url", words=words)
        assert_problem(client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1/x", "events": ["sadness"]}), 422, field="events[0]")


def test_a_name_that_resolves_inside_is_refused_unless_listed_by_name():
    from services.webhooks.hosts import HostRefused, check_addresses

    check_addresses("http://localhost:9/x", "localhost")  # listed by its exact name: the operator's choice
    for url in ("http://localhost:9/x", "http://127.0.0.1:9/x", "http://[::1]:9/x"):
        with pytest.raises(HostRefused, match="internal address"):
            check_addresses(url, "*")  # any host... but not one that points inside
    with pytest.raises(HostRefused, match="WEBHOOK_ALLOWED_HOSTS is empty"):
        check_addresses("http://127.0.0.1/x", "")
