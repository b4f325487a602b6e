"""Forks and continued jobs through the API (the app in-process, trained by the worker's own code): a fork
with nothing changed is bitwise its parent from its step on, one with a new rate is its parent before the
step and not after, a continued job is bitwise one job trained for the total; the fork's early steps are
read through its parent, never copied; what a fork may not change, or a step it cannot start from, refused
naming the field."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from services.store.db import session_factory
from services.store.models import MetricChunk
from tests.support.problems import assert_problem
from tests.support.specs import moons


def _series(client, job_id: int) -> dict:
    keys = client.get(f"/api/v1/jobs/{job_id}/metrics/keys").json()["keys"]
    return client.get(f"/api/v1/jobs/{job_id}/metrics", params={"keys": ",".join(keys)}).json()


def _model(client, job_id: int) -> dict:
    return {k: v for k, v in client.get(f"/api/v1/jobs/{job_id}/model").json().items() if k != "job_id"}


def _own_first_step(app, job_id: int) -> int | None:
    with session_factory(app.config["SETTINGS"].database_url)() as session:
        return session.scalar(select(func.min(MetricChunk.first_step)).where(MetricChunk.job_id == job_id))


def test_a_fork_with_nothing_changed_is_its_parent_bit_for_bit(app, client, train):
    spec = moons(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9}, model={**moons()["model"], "dropout": 0.1})
    parent = client.post("/api/v1/jobs", json=spec).json()
    assert train(parent["id"]) == "succeeded"
    fork = client.post(f"/api/v1/jobs/{parent['id']}/fork", json={"step": 13})
    assert fork.status_code == 202, fork.text
    fork = fork.json()
    assert fork["forked_from"] == {"job": parent["id"], "step": 13} and fork["tags"]["forked_from"] == f"{parent['id']}@13"
    assert train(fork["id"]) == "succeeded"
    assert _series(client, fork["id"]) == _series(client, parent["id"])  # every key, every step, every bit
    assert _model(client, fork["id"]) == _model(client, parent["id"])
    assert _own_first_step(app, fork["id"]) == 13  # its own points start at its step: the earlier ones are read through
    parted = client.get(f"/api/v1/jobs/{parent['id']}/diff/{fork['id']}").json()
    assert parted["first_difference"] is None
    assert_problem(client.delete(f"/api/v1/jobs/{parent['id']}"), 409, kind="has-forks")
    assert client.delete(f"/api/v1/jobs/{fork['id']}").status_code == 204
    assert client.delete(f"/api/v1/jobs/{parent['id']}").status_code == 204


def test_a_fork_at_a_new_rate_is_its_parent_before_the_step_and_not_after(client, train):
    parent = client.post("/api/v1/jobs", json=moons(optimizer={"name": "adam", "lr": 0.02})).json()
    assert train(parent["id"]) == "succeeded"
    fork = client.post(f"/api/v1/jobs/{parent['id']}/fork", json={"step": 20, "set": {"optimizer.lr": 0.005}}).json()
    assert train(fork["id"]) == "succeeded"
    a, b = _series(client, parent["id"])["loss"], _series(client, fork["id"])["loss"]
    assert a["steps"] == b["steps"] == list(range(40))
    assert a["values"][:21] == b["values"][:21]  # through step 20: the loss at step 20 is taken before its update
    assert all(x != y for x, y in zip(a["values"][21:], b["values"][21:], strict=True))
    # they part at step 20: its update (and so its update ratio) is the first taken at the new rate
    parted = client.get(f"/api/v1/jobs/{parent['id']}/diff/{fork['id']}").json()
    assert parted["first_difference"]["step"] == 20 and parted["branch"] == {"job": parent["id"], "step": 20}
    chart = client.get("/api/v1/compare/chart", params={"jobs": f"{parent['id']},{fork['id']}"})
    assert f'class="fork"><title>job {fork["id"]} forks from job {parent["id"]} at step 20</title>' in chart.json()["svg"]
    other = client.post(f"/api/v1/jobs/{parent['id']}/fork", json={"step": 20, "set": {"optimizer": {"name": "sgd", "lr": 0.1}}}).json()
    assert train(other["id"]) == "succeeded"  # another kind of optimizer: its state starts fresh
    grandchild = client.post(f"/api/v1/jobs/{fork['id']}/fork", json={"step": 30}).json()
    siblings = client.get(f"/api/v1/jobs/{other['id']}/diff/{grandchild['id']}").json()  # both the parent's run to step 20
    assert siblings["branch"] == {"job": parent["id"], "step": 20}
    assert client.get(f"/api/v1/jobs/{fork['id']}/diff/{grandchild['id']}").json()["branch"] == {"job": fork["id"], "step": 30}
    unrelated = client.post("/api/v1/jobs", json=moons()).json()
    assert client.get(f"/api/v1/jobs/{parent['id']}/diff/{unrelated['id']}").json().get("branch") is None


def test_a_continued_job_is_one_job_trained_for_the_total(client, train):
    spec = moons(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9})  # 5 epochs of 8 steps
    parent = client.post("/api/v1/jobs", json=spec).json()
    whole = client.post("/api/v1/jobs", json={**spec, "epochs": 9}).json()
    assert train(parent["id"]) == train(whole["id"]) == "succeeded"
    more = client.post(f"/api/v1/jobs/{parent['id']}/continue", json={"epochs": 4})
    assert more.status_code == 202, more.text
    more = more.json()
    assert more["forked_from"] == {"job": parent["id"], "step": 40} and more["progress"]["total_steps"] == 72
    assert train(more["id"]) == "succeeded"
    assert _model(client, more["id"]) == _model(client, whole["id"])
    ours, theirs = _series(client, more["id"]), _series(client, whole["id"])
    assert ours["loss"] == theirs["loss"] and ours["val_loss"] == theirs["val_loss"]
    assert np.isfinite(ours["loss"]["values"]).all()
    assert_problem(client.post(f"/api/v1/jobs/{parent['id']}/continue", json={"steps": 10}), 422, field="epochs", words="counts epochs")


def test_what_a_fork_may_not_do_is_refused_naming_the_field(client, train):
    parent = client.post("/api/v1/jobs", json=moons()).json()
    url = f"/api/v1/jobs/{parent['id']}/fork"
    assert_problem(client.post(url, json={"step": 0}), 409, kind="not-ended")  # queued: nothing to fork from yet
    assert train(parent["id"]) == "succeeded"
    assert_problem(client.post(url, json={"step": 41}), 422, field="step", words="step 0 to 40")
    assert_problem(client.post(url, json={"step": 5, "set": {"model.layers[0].units": 16}}), 422, field="set.model.layers[0].units",
                   words="keeps the network's shape")
    assert_problem(client.post(url, json={"step": 5, "set": {"data.n_samples": 50}}), 422, field="set.data.n_samples")
    assert_problem(client.post(url, json={"step": 5, "set": {"seed": 2}}), 422, field="set.seed")
    assert_problem(client.post(url, json={"step": 40, "set": {"epochs": 5}}), 422, field="set.epochs", words="more steps than that")
    assert_problem(client.post(url, json={"step": 5, "set": {"optimizer.lr": -1}}), 422, field="set.optimizer.lr")
    assert_problem(client.post("/api/v1/jobs/999999/fork", json={}), 404, kind="not-found")
    diverging = client.post("/api/v1/jobs", json=moons(optimizer={"name": "sgd", "lr": 1e6})).json()
    assert train(diverging["id"]) == "diverged"
    assert_problem(client.post(f"/api/v1/jobs/{diverging['id']}/continue", json={"epochs": 1}), 409, kind="not-ended")


def test_a_fork_of_a_fork_and_a_forks_unrecorded_step_replay_through_the_lineage(app, client, train):
    from tests.support.inprocess import compute_asked

    parent = client.post("/api/v1/jobs", json=moons(record={"every": 10})).json()
    assert train(parent["id"]) == "succeeded"
    changes = {"optimizer.lr": 0.005}
    sparse = client.post(f"/api/v1/jobs/{parent['id']}/fork", json={"step": 13, "set": changes}).json()
    full = client.post(f"/api/v1/jobs/{parent['id']}/fork",
                       json={"step": 13, "set": {**changes, "record": {"every": 1, "gradients": "full", "trace": True}}}).json()
    assert train(sparse["id"]) == train(full["id"]) == "succeeded"
    grandchild = client.post(f"/api/v1/jobs/{sparse['id']}/fork", json={"step": 25}).json()  # nothing changed, from the fork's step 25
    assert train(grandchild["id"]) == "succeeded"
    assert _model(client, grandchild["id"]) == _model(client, sparse["id"])
    assert _series(client, grandchild["id"]) == _series(client, sparse["id"])
    assert client.get(f"/api/v1/jobs/{sparse['id']}/gradients", params={"step": 17}).status_code == 202
    compute_asked(app.config["SETTINGS"])
    replayed = client.get(f"/api/v1/jobs/{sparse['id']}/gradients", params={"step": 17}).json()
    assert replayed["replayed"] is True
    assert replayed["gradients"] == client.get(f"/api/v1/jobs/{full['id']}/gradients", params={"step": 17}).json()["gradients"]
