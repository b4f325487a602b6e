"""Housekeeping on jobs that exist: rename and retag (PATCH), delete (everything recorded goes, the
quota is given back), clone with changes by dotted path, archive and restore an experiment. The
app in-process on both databases; owner isolation is pinned in test_auth."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from services.store import quota
from services.store.db import session_factory
from services.store.models import Checkpoint, Dispatch, Job, JobTag, MetricChunk, MlflowDeletion, StepArray
from tests.support.specs import moons


def _rows(app, job_id: int) -> dict[str, int]:
    with session_factory(app.config["SETTINGS"].database_url)() as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model).where(model.job_id == job_id))
                for model in (MetricChunk, StepArray, JobTag, Checkpoint, Dispatch)}


def test_patch_renames_and_retags_and_a_null_removes(client):
    job = client.post("/api/v1/jobs", json={**moons(), "name": "first", "tags": {"team": "lab", "try": "1"}}).json()
    changed = client.patch(f"/api/v1/jobs/{job['id']}", json={"name": "second", "tags": {"try": "2", "team": None, "new": "yes"}})
    assert changed.status_code == 200
    assert changed.json()["name"] == "second" and changed.json()["tags"] == {"new": "yes", "try": "2"}
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["tags"] == {"new": "yes", "try": "2"}
    assert client.patch(f"/api/v1/jobs/{job['id']}", json={"tags": {"new": "again"}}).json()["name"] == "second"  # name untouched
    assert client.patch(f"/api/v1/jobs/{job['id']}", json={"name": None}).json()["name"] is None
    assert [j["id"] for j in client.get("/api/v1/jobs", params={"tag": "new:again"}).json()["jobs"]] == [job["id"]]


def test_patch_refuses_what_a_submission_would(client):
    job = client.post("/api/v1/jobs", json=moons()).json()
    for body, field in (({"name": ""}, "name"), ({"name": "a\nb"}, "name"), ({"tags": {"k": 5}}, "tags.k"),
                        ({"experiment": "moved"}, "experiment"), ({"status": "succeeded"}, "status")):
        response = client.patch(f"/api/v1/jobs/{job['id']}", json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["field"] == field, response.json()
    assert client.patch("/api/v1/jobs/999999", json={"name": "x"}).status_code == 404


def test_delete_removes_everything_recorded_and_gives_the_quota_back(app, client, train):
    settings = app.config["SETTINGS"]
    job = client.post("/api/v1/jobs", json={**moons(record={"every": 5, "gradients": "full", "trace": [0]}),
                                            "tags": {"a": "b"}}).json()
    assert train(job["id"]) == "succeeded"
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        before = quota.usage(session, "local")
        reserved = session.get(Job, job["id"]).reserved_bytes
    assert reserved > 0 and _rows(app, job["id"])["MetricChunk"] > 0 and _rows(app, job["id"])["StepArray"] > 0
    with sessions.begin() as session:  # as if the MLflow worker had made its run
        session.get(Job, job["id"]).mlflow_run_id = "run-of-" + str(job["id"])
    response = client.delete(f"/api/v1/jobs/{job['id']}")
    assert response.status_code == 204 and response.content == b""
    assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert client.get(f"/api/v1/jobs/{job['id']}/metrics").status_code == 404
    assert client.delete(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert set(_rows(app, job["id"]).values()) == {0}
    with sessions() as session:
        assert quota.usage(session, "local") == before - reserved
        assert session.get(MlflowDeletion, f"run-of-{job['id']}") is not None  # for the MLflow worker to delete


def test_deleting_a_queued_or_running_job_stops_it(app, client):
    from services.store import jobs
    from worker.recorder import LeaseLost, Recorder

    settings = app.config["SETTINGS"]
    sessions = session_factory(settings.database_url)
    queued = client.post("/api/v1/jobs", json=moons()).json()
    assert client.delete(f"/api/v1/jobs/{queued['id']}").status_code == 204
    running = client.post("/api/v1/jobs", json=moons(epochs=2000)).json()
    with sessions.begin() as session:
        lease = jobs.claim(session, running["id"])
    assert client.delete(f"/api/v1/jobs/{running['id']}").status_code == 204
    recorder = Recorder(sessions, running["id"], lease, flush_seconds=1.0)
    try:
        recorder.flush()  # the worker's next write finds no job and stops, writing nothing
        raise AssertionError("a deleted job's worker went on writing")
    except LeaseLost:
        pass


def test_a_job_of_a_running_sweep_is_kept(client):
    sweep = client.post("/api/v1/sweeps", json={"base": moons(epochs=1), "space": {"optimizer.lr": [0.01, 0.02]}}).json()
    job_id = sweep["jobs"][0]["id"]
    response = client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 409 and response.json()["sweep_id"] == sweep["id"]
    client.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
    assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 204


def test_clone_changes_fields_by_dotted_path_and_keeps_the_rest(client):
    original = client.post("/api/v1/jobs", json={**moons(), "name": "base", "experiment": "clones", "tags": {"team": "lab"},
                                                 "time_limits": {"hard_seconds": 300}}).json()
    response = client.post(f"/api/v1/jobs/{original['id']}/clone",
                           json={"set": {"optimizer.lr": 0.5, "model.layers[0].units": 16}, "name": "wider"})
    assert response.status_code == 202 and response.headers["Location"].endswith(f"/jobs/{response.json()['id']}")
    clone = client.get(f"/api/v1/jobs/{response.json()['id']}", params={"include": "spec"}).json()
    assert clone["spec"]["optimizer"]["lr"] == 0.5 and clone["spec"]["model"]["layers"][0]["units"] == 16
    assert clone["spec"]["data"] == moons()["data"] and clone["spec"]["optimizer"]["name"] == "adam"
    assert clone["name"] == "wider" and clone["experiment"] == "clones" and clone["time_limits"]["hard_seconds"] == 300
    assert clone["tags"] == {"team": "lab", "cloned_from": str(original["id"])}
    assert clone["n_params"] == 2 * 16 + 16 + 16 + 1
    assert client.get(f"/api/v1/jobs/{original['id']}", params={"include": "spec"}).json()["spec"]["optimizer"]["lr"] == 0.02


def test_a_clone_is_checked_like_a_submission_and_names_the_field_it_set(client):
    original = client.post("/api/v1/jobs", json=moons()).json()
    for changes, field in (({"optimizer.lr": -1}, "set.optimizer.lr"), ({"model.layers[5].units": 3}, "set.model.layers[5].units"),
                           ({"model.layers[0].activation": "soft"}, "set.model.layers[0].activation"), ({"bogus": 1}, "set.bogus"),
                           ({"model.layers[0]..x": 1}, "set.model.layers[0]..x")):
        response = client.post(f"/api/v1/jobs/{original['id']}/clone", json={"set": changes})
        assert response.status_code == 422, changes
        assert response.json()["field"] == field, response.json()
    assert client.post(f"/api/v1/jobs/{original['id']}/clone", json={"set": {"epochs": 10**6}}).json()["limit"]["name"] == "MAX_STEPS"
    assert client.post("/api/v1/jobs/999999/clone", json={}).status_code == 404


def test_archive_hides_an_experiments_ended_jobs_until_restored(client, train):
    experiment = f"arch-{uuid.uuid4().hex[:6]}"
    ended = [client.post("/api/v1/jobs", json={**moons(epochs=1), "experiment": experiment}).json()["id"] for _ in range(2)]
    for job_id in ended:
        assert train(job_id) == "succeeded"
    queued = client.post("/api/v1/jobs", json={**moons(), "experiment": experiment}).json()["id"]
    answer = client.post(f"/api/v1/experiments/{experiment}/archive").json()
    assert answer == {"experiment": experiment, "changed": 2, "not_ended": 1}
    listed = lambda **q: sorted(j["id"] for j in client.get("/api/v1/jobs", params={"experiment": experiment, **q}).json()["jobs"])
    assert listed() == [queued] and listed(archived="true") == sorted(ended)
    assert client.get(f"/api/v1/jobs/{ended[0]}").json()["archived"] is True  # still there by id
    row = next(e for e in client.get("/api/v1/experiments").json()["experiments"] if e["name"] == experiment)
    assert row["jobs"] == 3 and row["archived_jobs"] == 2 and row["active_jobs"] == 1
    assert client.post(f"/api/v1/experiments/{experiment}/archive").json()["changed"] == 0  # repeatable
    assert client.post(f"/api/v1/experiments/{experiment}/restore").json()["changed"] == 2
    assert listed() == sorted([*ended, queued])
    assert client.post("/api/v1/experiments/nothing-here/archive").status_code == 404
