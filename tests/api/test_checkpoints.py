"""Kept checkpoints through the API (the app in-process, trained by the worker's own code): a job keeps its
state at its cadence and after its last step, after it has ended; a replay starts from the latest kept at or
before its step and is still bit for bit the full recording; a fork of a late step starts from one too;
deleting them gives their bytes back to the owner's quota and makes replays and forks say so (409)."""

from __future__ import annotations

from sqlalchemy import select

from services.store.db import session_factory
from services.store.models import Checkpoint, OwnerUsage
from tests.support.inprocess import compute_asked
from tests.support.problems import assert_problem
from tests.support.specs import moons

SPARSE = {"every": 10, "gradients": "summary", "checkpoints": 10}


def _reserved(app) -> int:
    with session_factory(app.config["SETTINGS"].database_url)() as session:
        return sum(session.scalars(select(OwnerUsage.reserved_bytes)))


def test_a_job_keeps_its_states_and_a_replay_starts_from_the_latest_one_bit_for_bit(app, client, train):
    spec = moons(model={**moons()["model"], "dropout": 0.2})
    sparse = client.post("/api/v1/jobs", json={**spec, "record": SPARSE}).json()
    full = client.post("/api/v1/jobs", json={**spec, "record": {"every": 1, "gradients": "full", "trace": True}}).json()
    assert train(sparse["id"]) == train(full["id"]) == "succeeded"
    kept = client.get(f"/api/v1/jobs/{sparse['id']}/checkpoints").json()
    assert kept["every"] == 10 and kept["steps"] == [10, 20, 30, 40] and kept["bytes"] > 0 and kept["deleted_at"] is None
    default = client.get(f"/api/v1/jobs/{full['id']}/checkpoints").json()
    assert default["every"] == 10_000 and default["steps"] == [40]  # 40 steps at the chosen cadence: only the last
    with session_factory(app.config["SETTINGS"].database_url)() as session:  # the resume checkpoint went with the job's end
        assert session.get(Checkpoint, sparse["id"]) is None
    for step, start in ((7, 0), (27, 20), (39, 30)):
        assert client.get(f"/api/v1/jobs/{sparse['id']}/trace", params={"step": step}).status_code == 202
        assert compute_asked(app.config["SETTINGS"]) == 1
        trace = client.get(f"/api/v1/jobs/{sparse['id']}/trace", params={"step": step}).json()
        assert trace.pop("replayed") is True and trace.pop("replayed_from") == start
        reference = client.get(f"/api/v1/jobs/{full['id']}/trace", params={"step": step}).json()
        assert reference.pop("replayed") is False and trace == reference  # every number, every bit
        gradients = client.get(f"/api/v1/jobs/{sparse['id']}/gradients", params={"step": step}).json()
        assert gradients["replayed_from"] == start


def test_a_fork_and_a_continued_job_start_from_kept_states_and_match_their_parent(client, train):
    spec = moons(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9}, record=SPARSE)
    parent = client.post("/api/v1/jobs", json=spec).json()
    assert train(parent["id"]) == "succeeded"
    fork = client.post(f"/api/v1/jobs/{parent['id']}/fork", json={"step": 25}).json()
    assert train(fork["id"]) == "succeeded"
    more = client.post(f"/api/v1/jobs/{parent['id']}/continue", json={"epochs": 2}).json()
    assert train(more["id"]) == "succeeded"
    whole = client.post("/api/v1/jobs", json={**spec, "epochs": 7}).json()
    assert train(whole["id"]) == "succeeded"
    parent_model = client.get(f"/api/v1/jobs/{parent['id']}/model").json()
    assert client.get(f"/api/v1/jobs/{fork['id']}/model").json()["weights"] == parent_model["weights"]
    assert client.get(f"/api/v1/jobs/{more['id']}/model").json()["weights"] == client.get(f"/api/v1/jobs/{whole['id']}/model").json()["weights"]
    assert client.get(f"/api/v1/jobs/{more['id']}/checkpoints").json()["steps"] == [50, 56]  # its own, after the fork step (40)


def test_deleting_kept_checkpoints_frees_their_bytes_and_refuses_replays_and_forks(app, client, train):
    at_start = _reserved(app)
    parent = client.post("/api/v1/jobs", json=moons(record=SPARSE)).json()
    assert_problem(client.delete(f"/api/v1/jobs/{parent['id']}/checkpoints"), 409, kind="not-ended", words="cancel it first")
    assert train(parent["id"]) == "succeeded"
    fork = client.post(f"/api/v1/jobs/{parent['id']}/fork", json={"step": 20, "set": {"optimizer.lr": 0.01}}).json()
    assert train(fork["id"]) == "succeeded"
    size, before = client.get(f"/api/v1/jobs/{parent['id']}/checkpoints").json()["bytes"], _reserved(app)
    deleted = client.delete(f"/api/v1/jobs/{parent['id']}/checkpoints")
    assert deleted.status_code == 204, deleted.text
    assert _reserved(app) == before - size
    gone = client.get(f"/api/v1/jobs/{parent['id']}/checkpoints").json()
    assert gone["steps"] == [] and gone["bytes"] == 0 and gone["deleted_at"] is not None
    assert_problem(client.get(f"/api/v1/jobs/{parent['id']}/gradients", params={"step": 13}), 409, kind="checkpoints-deleted",
                   words="cannot be replayed")
    assert_problem(client.post(f"/api/v1/jobs/{parent['id']}/fork", json={"step": 30}), 409, kind="checkpoints-deleted",
                   words=f"job {parent['id']}'s kept checkpoints were deleted")
    assert_problem(client.post(f"/api/v1/jobs/{fork['id']}/continue", json={"epochs": 1}), 409, kind="checkpoints-deleted",
                   words=f"ancestor job {parent['id']}")
    recorded = client.get(f"/api/v1/jobs/{parent['id']}/metrics", params={"keys": "loss"}).json()  # what it recorded stays
    assert len(recorded["loss"]["steps"]) == 5
    assert client.delete(f"/api/v1/jobs/{fork['id']}").status_code == client.delete(f"/api/v1/jobs/{parent['id']}").status_code == 204
    assert _reserved(app) == at_start  # nothing given back twice, nothing kept back
