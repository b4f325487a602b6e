"""Submit over real HTTP, train in a real Celery worker, read everything back (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time

import pytest

from engine.training import run
from tests.support.specs import SEED, moons
from tests.support.waiting import wait_computed, wait_status


def test_seed_job_trains_and_reports_exactly_what_the_engine_computes(api):
    response = api.post("/api/v1/jobs", json={**SEED, "name": "seed walkthrough", "experiment": "post", "tags": {"source": "blog"}})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["status"] in {"queued", "running", "succeeded"} and job["name"] == "seed walkthrough"
    done = wait_status(api, job["id"], {"succeeded", "failed", "diverged"})
    assert done["status"] == "succeeded", done
    expected = run(SEED)
    assert done["summary"]["final_loss"] == expected["metrics"]["loss"][0][1] == pytest.approx(0.76881, abs=1e-5)
    assert done["progress"] == {"step": 1, "total_steps": 1, "fraction": 1.0, "loss": expected["metrics"]["loss"][0][1]}
    assert done["attempt"] == 1 and done["started_at"] and done["finished_at"] and done["tags"] == {"source": "blog"}
    assert "spec" not in done and api.get(done["links"]["spec"]).json() == SEED

    metrics = api.get(f"/api/v1/jobs/{job['id']}/metrics").json()
    assert set(metrics) == set(expected["metrics"])
    for key, points in expected["metrics"].items():
        assert metrics[key] == {"steps": [s for s, _ in points], "values": [v for _, v in points]}, key
    assert api.get(f"/api/v1/jobs/{job['id']}/metrics/keys").json()["keys"] == sorted(expected["metrics"])

    trace = api.get(f"/api/v1/jobs/{job['id']}/trace", params={"step": 0}).json()
    assert trace.pop("replayed") is False and trace == expected["trace"][0]  # recorded, not replayed
    grads = api.get(f"/api/v1/jobs/{job['id']}/gradients", params={"step": 0}).json()
    assert grads["gradients"] == expected["gradients"][0]["gradients"]

    model = api.get(f"/api/v1/jobs/{job['id']}/model").json()
    assert model["weights"] == expected["model"]["weights"] and model["biases"] == expected["model"]["biases"]
    predicted = api.post(f"/api/v1/jobs/{job['id']}/predict", json={"X": [[0.5, 0.1], [0.9, 0.8]]}).json()
    assert len(predicted["outputs"]) == 2 and predicted["classes"] in ([[1], [1]], [[0], [1]], [[1], [0]], [[0], [0]])


def test_a_step_not_recorded_is_replayed_by_a_worker_and_one_never_taken_is_a_404(api):
    job = api.post("/api/v1/jobs", json=moons(record={"every": 5})).json()
    wait_status(api, job["id"], {"succeeded"})
    asked = api.get(f"/api/v1/jobs/{job['id']}/gradients", params={"step": 3})
    assert asked.status_code == 202 and asked.headers["Retry-After"] == "1"
    answer = wait_computed(api, f"/api/v1/jobs/{job['id']}/gradients", step=3)
    assert answer.status_code == 200 and answer.json()["replayed"] is True
    assert set(answer.json()["gradients"]) == {"dense_1.weight", "dense_1.bias", "dense_2.weight", "dense_2.bias"}
    trace = api.get(f"/api/v1/jobs/{job['id']}/trace", params={"step": 3})  # the same replay gave it
    assert trace.status_code == 200 and trace.json()["replayed"] is True and trace.json()["step"] == 3
    never = api.get(f"/api/v1/jobs/{job['id']}/trace", params={"step": 40})
    assert never.status_code == 404 and never.headers["Content-Type"] == "application/problem+json"
    assert "took steps 0 to 39" in never.json()["detail"]
    assert api.get(f"/api/v1/jobs/{job['id']}/trace").status_code == 400


def test_validation_and_epoch_metrics_reach_the_store(api):
    job = api.post("/api/v1/jobs", json=moons()).json()
    done = wait_status(api, job["id"], {"succeeded"})
    expected = run(moons())
    got = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "val_loss,val_accuracy,train_loss"}).json()
    for key in ("val_loss", "val_accuracy", "train_loss"):
        assert got[key]["values"] == [v for _, v in expected["metrics"][key]]
    assert set(got) == {"val_loss", "val_accuracy", "train_loss"}
    assert done["summary"]["final_val_accuracy"] == expected["summary"]["final_val_accuracy"]
    assert done["summary"]["total_steps"] == 40 and done["summary"]["steps_completed"] == 40


def test_metrics_downsampling_keeps_spikes_and_csv(api):
    spec = moons(epochs=40, record={"every": 1, "gradients": "none"})
    job = api.post("/api/v1/jobs", json=spec).json()
    wait_status(api, job["id"], {"succeeded"})
    full = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss"}).json()["loss"]
    assert full["steps"] == list(range(320))
    small = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss", "max_points": 40}).json()["loss"]
    assert len(small["steps"]) <= 40
    assert max(small["values"]) == max(full["values"]) and min(small["values"]) == min(full["values"])
    assert small["steps"][0] == 0 and small["steps"][-1] == 319
    window = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss", "start": 100, "end": 109}).json()["loss"]
    assert window["steps"] == list(range(100, 110)) and window["values"] == full["values"][100:110]
    csv_text = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss", "end": 2}, headers={"Accept": "text/csv"})
    assert csv_text.headers["Content-Type"].startswith("text/csv")
    lines = csv_text.text.strip().splitlines()
    assert lines[0] == "key,step,value" and len(lines) == 4
    assert float(lines[1].split(",")[2]) == full["values"][0]


def test_list_filters_and_cursor_pages(api):
    ids = []
    for i in range(3):
        body = {**moons(epochs=1), "experiment": f"list-{api.base_url.port}", "tags": {"batch": "a" if i < 2 else "b"}}
        ids.append(api.post("/api/v1/jobs", json=body).json()["id"])
    exp = f"list-{api.base_url.port}"
    page = api.get("/api/v1/jobs", params={"experiment": exp, "limit": 2}).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    assert "spec" not in page["jobs"][0]
    rest = api.get(page["next"]).json()
    assert [j["id"] for j in rest["jobs"]] == [ids[0]] and rest["next_cursor"] is None
    assert [j["id"] for j in api.get("/api/v1/jobs", params={"experiment": exp, "tag": "batch:b"}).json()["jobs"]] == [ids[2]]
    assert len(api.get("/api/v1/jobs", params={"experiment": exp, "tag": "batch"}).json()["jobs"]) == 3
    for job_id in ids:
        wait_status(api, job_id, {"succeeded"})
    assert len(api.get("/api/v1/jobs", params={"experiment": exp, "status": "succeeded"}).json()["jobs"]) == 3
    assert api.get("/api/v1/jobs", params={"status": "sleeping"}).status_code == 400


def test_cancel_running_job_stops_within_a_second_and_keeps_points(api):
    slow = moons(epochs=10000, batch_size=1, record={"every": 1, "gradients": "none"})
    job = api.post("/api/v1/jobs", json=slow).json()
    wait_status(api, job["id"], {"running"})
    wait_status_step = lambda: api.get(f"/api/v1/jobs/{job['id']}").json()["progress"]["step"] > 0
    from tests.support.services import wait_for

    wait_for(wait_status_step, 30, what="first flushed progress")
    queued = api.post("/api/v1/jobs", json=moons()).json()  # waits behind the slow one (one worker)
    assert api.get(f"/api/v1/jobs/{queued['id']}").json()["status"] == "queued"
    cancelled_queued = api.post(f"/api/v1/jobs/{queued['id']}/cancel")
    assert cancelled_queued.status_code == 202 and cancelled_queued.json()["status"] == "cancelled"

    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 202
    done = wait_status(api, job["id"], {"cancelled"}, timeout=10)
    assert done["error"]["reason"] == "cancelled" and 0 < done["progress"]["step"] < done["progress"]["total_steps"]  # stopped mid-way
    loss = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss"}).json()["loss"]
    assert len(loss["steps"]) == done["progress"]["step"] > 0
    assert loss["steps"] == list(range(len(loss["steps"])))
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 409
    time.sleep(0.5)  # the cancelled queued job never starts, even once the worker is free
    assert api.get(f"/api/v1/jobs/{queued['id']}").json()["attempt"] == 0


def test_diverged_job_reports_step_and_quantity(api):
    spec = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]},
            "loss": "mse", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 1e6}, "steps": 60, "seed": 1}
    job = api.post("/api/v1/jobs", json=spec).json()
    done = wait_status(api, job["id"], {"diverged", "succeeded", "failed"})
    expected = run(spec)
    assert done["status"] == "diverged"
    assert done["error"]["step"] == expected["error"]["step"] and done["error"]["quantity"] == expected["error"]["quantity"]
    assert api.get(f"/api/v1/jobs/{job['id']}/model").status_code == 200


def test_events_stream_status_and_progress_until_the_end(api):
    job = api.post("/api/v1/jobs", json=moons(epochs=20)).json()
    events = []
    with api.stream("GET", f"/api/v1/jobs/{job['id']}/events") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    kinds = [e for e, _ in events]
    assert kinds[-1] == "end" and events[-1][1]["status"] == "succeeded"
    assert "status" in kinds and "progress" in kinds
    progress = [d for e, d in events if e == "progress"]
    steps = [d["step"] for d in progress]
    assert steps == sorted(steps) and steps[-1] == 160
    last = progress[-1]  # 8 steps an epoch: the epoch and its figures, as the metrics hold them
    assert last["epoch"] == 20 and last["epochs"] == 20 and all(d["epoch"] == d["step"] // 8 for d in progress)
    val_loss = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "val_loss,train_accuracy"}).json()
    assert last["val_loss"] == val_loss["val_loss"]["values"][-1] and last["train_accuracy"] == val_loss["train_accuracy"]["values"][-1]
    assert all(d["val_loss"] is None for d in progress if d["epoch"] == 0)


def test_model_before_the_end_is_a_conflict(api):
    job = api.post("/api/v1/jobs", json=moons(epochs=10000, batch_size=1, record={"every": 10})).json()
    try:
        wait_status(api, job["id"], {"running"})
        response = api.get(f"/api/v1/jobs/{job['id']}/model")
        assert response.status_code == 409 and response.json()["status_now"] in ("queued", "running")
        assert api.post(f"/api/v1/jobs/{job['id']}/predict", json={"X": [[0, 0]]}).status_code == 409
    finally:
        api.post(f"/api/v1/jobs/{job['id']}/cancel")
        wait_status(api, job["id"], {"cancelled"})


def test_a_diagnosis_is_on_the_event_stream_while_the_job_still_trains(api):
    """A first layer dead from step 0: the worker stores the diagnosis the moment it is found (not at
    its next flush) and the stream sends it while the job runs; a reconnect does not send it again."""
    dead = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
                      "weights": [[[-1.0, -1.0]] * 4, [[0.6, -0.4, 0.2, 0.1]]], "biases": [[-9.0] * 4, [0.0]]},
            "loss": "bce", "data": {"builtin": "moons", "n_samples": 100, "standardize": True}, "optimizer": {"name": "sgd", "lr": 0.1},
            "steps": 2_000_000, "record": {"every": 100, "gradients": "none"}}
    submitted = api.post("/api/v1/jobs", json=dead)
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    try:
        seen, last_id = [], None
        with api.stream("GET", f"/api/v1/jobs/{job['id']}/events") as stream:
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("id: "):
                    last_id = line[4:]
                elif line.startswith("data: ") and event == "diagnosis":
                    seen.append((last_id, json.loads(line[6:])))
                    if {d["kind"] for _, d in seen} >= {"dead_units", "layer_dead"}:
                        break
        assert all(ident.startswith("running/") for ident, _ in seen)  # sent while it trains
        layer = next(d for _, d in seen if d["kind"] == "layer_dead")
        assert (layer["step"], layer["layer"], layer["severity"]) == (0, "dense_1", "error")
        assert api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "running"
        with api.stream("GET", f"/api/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": last_id}) as again:
            for line in again.iter_lines():
                assert line != "event: diagnosis", "a diagnosis already sent was sent again"
                if line.startswith("event: progress"):
                    break
    finally:
        api.post(f"/api/v1/jobs/{job['id']}/cancel")
