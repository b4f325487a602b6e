"""Any step of an ended job, as if it had been recorded in full: its gradients and trace replayed on request
by the worker's own code (202 until then), bit for bit what a job recording every step fully wrote; kept
for the next request; a step the job never took, or one of a job still training, refused naming why."""

from __future__ import annotations

import pytest

from tests.support.inprocess import compute_asked
from tests.support.problems import assert_problem
from tests.support.specs import moons

SPECS = {
    "float64, adam, dropout, shuffled": moons(model={**moons()["model"], "dropout": 0.2}),
    "float32, sgd with momentum, clipped": moons(dtype="float32", optimizer={"name": "sgd", "lr": 0.2, "momentum": 0.9, "clip_norm": 0.5}),
}


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_an_unrecorded_step_is_replayed_bit_for_bit_as_a_full_recording_wrote_it(app, client, train, spec):
    sparse = client.post("/api/v1/jobs", json={**spec, "record": {"every": 10, "gradients": "summary"}}).json()
    full = client.post("/api/v1/jobs", json={**spec, "record": {"every": 1, "gradients": "full", "trace": True}}).json()
    assert train(sparse["id"]) == train(full["id"]) == "succeeded"
    for step in (0, 7, 39):
        pending = client.get(f"/api/v1/jobs/{sparse['id']}/gradients", params={"step": step})
        assert pending.status_code == 202 and pending.headers["Retry-After"] == "1", pending.text
        assert pending.json()["status"] == "pending" and pending.json()["step"] == step
        assert compute_asked(app.config["SETTINGS"]) == 1
        replayed = client.get(f"/api/v1/jobs/{sparse['id']}/gradients", params={"step": step}).json()
        recorded = client.get(f"/api/v1/jobs/{full['id']}/gradients", params={"step": step}).json()
        assert replayed["replayed"] is True and recorded["replayed"] is False
        assert replayed["gradients"] == recorded["gradients"]  # every entry, every bit
        trace = client.get(f"/api/v1/jobs/{sparse['id']}/trace", params={"step": step}).json()  # the same replay: no new one
        assert compute_asked(app.config["SETTINGS"]) == 0
        assert trace.pop("replayed") is True and trace.pop("replayed_from") == 0
        reference = client.get(f"/api/v1/jobs/{full['id']}/trace", params={"step": step}).json()
        assert reference.pop("replayed") is False and trace == reference
    table = client.get(f"/api/v1/jobs/{sparse['id']}/trace", params={"step": 7}, headers={"Accept": "text/plain"})
    assert table.status_code == 200 and "∂L/∂W" in table.text


def test_a_step_that_cannot_be_replayed_is_refused_naming_why(client, train):
    waiting = client.post("/api/v1/jobs", json=moons()).json()  # queued: nobody trains it here
    assert_problem(client.get(f"/api/v1/jobs/{waiting['id']}/gradients", params={"step": 3}), 404, field="step", kind="not-recorded",
                   words="once it has ended")
    job = client.post("/api/v1/jobs", json=moons()).json()
    assert train(job["id"]) == "succeeded"
    assert_problem(client.get(f"/api/v1/jobs/{job['id']}/trace", params={"step": 40}), 404, field="step", kind="not-recorded",
                   words="took steps 0 to 39")
