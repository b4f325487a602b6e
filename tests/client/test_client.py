"""The Python client against the in-process service (conftest.py: create_app() over WSGI, every
queued job trained at once with the worker's code); connection failures against a real address."""

from __future__ import annotations

import statistics

import pytest

from bplab import Client, Conflict, ConnectionFailed, NotFound, ValidationFailed
from tests.support.services import free_port
from tests.support.specs import SEED, moons


@pytest.fixture
def client(api):
    return api


def test_submit_wait_and_read_everything(client):
    job = client.submit(SEED, name="client-seed", experiment="client", tags={"via": "client"})
    done = client.wait(job["id"], progress=False, timeout=60)
    assert done["status"] == "succeeded" and done["tags"] == {"via": "client"}
    m = client.metrics(job["id"], ["loss"])
    assert m["loss"]["steps"] == [0] and m["loss"]["values"][0] == pytest.approx(0.76881, abs=1e-5)
    frame = client.metrics(job["id"]).as_dataframe()
    assert frame.loc[0, "loss"] == m["loss"]["values"][0] and "grad_norm/dense_1.weight" in frame.columns
    assert client.gradients(job["id"], 0)["dense_2.weight"] == [[0.17702364957441255, 0.06973658922628374]]
    assert client.trace(job["id"], 0)["layers"][1]["delta"] == [[0.5364353017406441]]
    assert "W2₁ × δ₂ × ReLU′(Z1₁)" in client.trace_table(job["id"], 0)
    assert client.model(job["id"])["weights"][1] == [[0.5822976350425587, -0.4069736589226284]]
    assert len(client.predict(job["id"], [[0.5, 0.1]])["outputs"]) == 1
    assert "loss" in client.metric_keys(job["id"])
    assert any(j["id"] == job["id"] for j in client.jobs(experiment="client"))
    csv_text = client.metrics_csv(job["id"], ["loss"])
    assert csv_text.splitlines()[1].startswith("loss,0,")


def test_events_iterate_until_the_end(client):
    job = client.submit(moons(epochs=10))
    events = list(client.events(job["id"]))
    assert events[-1][0] == "end" and events[-1][1]["status"] == "succeeded"
    assert any(kind == "progress" for kind, _ in events)


def test_api_errors_are_typed_with_problem_fields(client):
    with pytest.raises(ValidationFailed) as info:
        client.submit({**SEED, "optimizer": {"name": "sgd", "lr": -1}})
    assert info.value.status == 422 and info.value.field == "optimizer.lr" and "must be > 0" in info.value.detail
    with pytest.raises(NotFound):
        client.get(10**9)
    job = client.wait(client.submit(SEED)["id"], progress=False)
    with pytest.raises(Conflict):
        client.cancel(job["id"])


def test_connection_errors_are_retried_then_raised():
    with Client(f"http://127.0.0.1:{free_port()}", retries=2) as dead, pytest.raises(ConnectionFailed):
        dead.get(1)


def test_a_sweep_of_30_jobs_with_seeds_and_its_leaderboard(client):
    base = moons(epochs=2, data={"builtin": "moons", "n_samples": 40, "validation_split": 0.25})
    sweep = client.sweep({"name": "client-30", "experiment": "client-sweep", "base": base, "strategy": "grid",
                          "space": {"optimizer.lr": [0.003, 0.01, 0.03, 0.1, 0.3], "batch_size": [5, "full"]}, "seeds": 3,
                          "objective": {"metric": "val_loss", "goal": "minimize"}, "max_parallel": 6})
    done = client.wait_sweep(sweep["id"], progress=False, poll=0.3)
    assert done["status"] == "finished" and done["progress"]["by_state"] == {"succeeded": 30}
    expected = []
    for row in done["leaderboard"]:
        values = [client.metrics(job_id, ["val_loss"])["val_loss"]["values"][-1] for job_id in row["jobs"]]
        assert len(values) == 3
        expected.append(statistics.fmean(values))
        assert row["objective_mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert row["objective_std"] == pytest.approx(statistics.stdev(values), rel=1e-9)
    assert expected == sorted(expected)  # best first
    assert client.leaderboard(sweep["id"]) == done["leaderboard"]
    assert set(client.importance(sweep["id"])) == {"optimizer.lr", "batch_size"}

    frame = client.jobs_frame(sweep_id=sweep["id"])  # the sweep as a table, as mlflow.search_runs gives one
    assert len(frame) == 30 and frame.index.name == "id" and (frame["status"] == "succeeded").all()
    assert sorted(frame["params.lr"].unique()) == [0.003, 0.01, 0.03, 0.1, 0.3]
    assert set(frame["params.batch_size"]) == {5, "full"} and set(frame["params.seed"]) == {1, 2, 3}
    assert "params.optimizer.lr" not in frame.columns and (frame["params.architecture"] == "2-8(relu)-1(sigmoid)").all()
    best = frame.groupby(["params.lr", "params.batch_size"])["summary.final_val_loss"].mean().min()
    assert best == pytest.approx(done["leaderboard"][0]["objective_mean"], rel=1e-12)
    assert (frame["duration_s"] > 0).all() and str(frame["finished_at"].dt.tz) == "UTC"
    assert client.sweeps(limit=5)[0]["id"] == sweep["id"]


def test_diagnoses_from_the_client_and_a_column_per_kind_in_the_jobs_frame(client):
    from tests.support.specs import dead_relu

    experiment = f"diagnosed-{free_port()}"
    steep, gentle = (client.submit(dead_relu(lr), experiment=experiment) for lr in (1.0, 0.5))
    for job in (steep, gentle):
        client.wait(job["id"], progress=False, timeout=60)
    found = client.diagnoses(steep["id"])
    assert [d["kind"] for d in found] == ["dead_units"] and found[0]["layer"] == "dense_1" and client.diagnoses(gentle["id"]) == []
    frame = client.jobs_frame(experiment=experiment)
    assert frame["diagnosis.dead_units"].to_dict() == {steep["id"]: True, gentle["id"]: False}
    assert list(client.jobs_frame(experiment=experiment, diagnosis="dead_units").index) == [steep["id"]]


def test_housekeeping_from_the_client(client):
    experiment = f"keep-{free_port()}"
    job = client.submit(moons(epochs=1), name="keep", experiment=experiment, tags={"a": "1"})
    client.wait(job["id"], progress=False, timeout=60)
    assert client.update(job["id"], name="kept", tags={"a": None, "b": "2"})["tags"] == {"b": "2"}
    clone = client.clone(job["id"], {"optimizer.lr": 0.5, "epochs": 2}, name="faster")
    done = client.wait(clone["id"], progress=False, timeout=60)
    assert done["status"] == "succeeded" and done["tags"] == {"b": "2", "cloned_from": str(job["id"])}
    assert client.spec(clone["id"])["optimizer"]["lr"] == 0.5
    with pytest.raises(ValidationFailed) as refused:
        client.clone(job["id"], {"optimizer.lr": "fast"})
    assert refused.value.field == "set.optimizer.lr"
    assert client.archive(experiment) == {"experiment": experiment, "changed": 2, "not_ended": 0}
    assert client.jobs(experiment=experiment) == [] and len(client.jobs(experiment=experiment, archived=True)) == 2
    assert client.restore(experiment)["changed"] == 2
    assert next(e for e in client.experiments() if e["name"] == experiment)["jobs"] == 2
    client.delete(clone["id"])
    with pytest.raises(NotFound):
        client.get(clone["id"])
    assert [j["id"] for j in client.jobs(experiment=experiment)] == [job["id"]]
