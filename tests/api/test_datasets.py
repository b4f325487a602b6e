"""Datasets as a practitioner with a CSV meets them (the app in-process, both databases): upload once,
named by content; jobs and sweeps name a dataset and its columns; every bad file and every bad
reference is a problem naming what is wrong; lineage; deletion while in use and after."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from tests.support.problems import assert_problem

RNG = np.random.default_rng(7)
N = 120


def csv_bytes(rows: int = N, label: bool = True) -> bytes:
    """Two features that separate the classes `red` and `blue`, a text column, a numeric target."""
    X = RNG.normal(size=(rows, 2))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "red", "blue")
    lines = ["f1,f2,city,score" + (",label" if label else "")]
    for i in range(rows):
        lines.append(f"{float(X[i, 0])!r},{float(X[i, 1])!r},{'paris' if i % 2 else 'rome'},{X[i, 0] * 2:.6f}" + (f",{labels[i]}" if label else ""))
    return ("\n".join(lines) + "\n").encode()


CSV = csv_bytes()


def upload(client, content: bytes, filename: str = "data.csv", **fields):
    return client.post("/api/v1/datasets", files={"file": (filename, content, "application/octet-stream")}, data=fields)


def net(units_out: int = 1, activation: str = "sigmoid") -> dict:
    return {"layers": [{"units": 8, "activation": "relu"}, {"units": units_out, "activation": activation}]}


def job_body(dataset_id: int, loss: str = "bce", **data) -> dict:
    heads = {"bce": net(), "cross_entropy": net(2, "softmax"), "mse": net(1, "linear")}
    return {"model": heads[loss], "loss": loss, "data": {"dataset": dataset_id, "target": "label", **data}, "epochs": 20, "batch_size": 16,
            "optimizer": {"name": "adam", "lr": 0.05}}


def test_a_csv_becomes_one_dataset_named_by_its_content(client):
    made = upload(client, CSV, name="colours")
    assert made.status_code == 201, made.text
    body = made.json()
    assert made.headers["Location"] == f"/api/v1/datasets/{body['id']}"
    assert body["name"] == "colours" and body["rows"] == N and body["format"] == "csv"
    assert [(c["name"], c["type"]) for c in body["columns"]] == [("f1", "number"), ("f2", "number"), ("city", "string"),
                                                                 ("score", "number"), ("label", "string")]
    assert body["columns"][4]["classes"] == ["blue", "red"] and len(body["preview"]) == 5 and body["upload_bytes"] == len(CSV)
    assert len(body["digest"]) == 64 and body["bytes"] > 0
    # the same table with a BOM and CRLF line endings, uploaded again: the same dataset, stored once
    again = upload(client, b"\xef\xbb\xbf" + CSV.replace(b"\n", b"\r\n"), filename="copy.csv")
    assert again.status_code == 200 and again.json()["id"] == body["id"] and again.json()["digest"] == body["digest"]
    assert client.get(f"/api/v1/datasets/{body['id']}").json()["digest"] == body["digest"]
    listed = client.get("/api/v1/datasets", params={"limit": 500}).json()["datasets"]
    assert [d["id"] for d in listed].count(body["id"]) == 1


def test_npz_and_parquet_are_read_too(client):
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, y = RNG.normal(size=(50, 3)), RNG.integers(0, 3, size=50)
    buffer = io.BytesIO()
    np.savez(buffer, X=X, y=y)
    made = upload(client, buffer.getvalue(), filename="arrays.npz")
    assert made.status_code == 201, made.text
    assert [c["name"] for c in made.json()["columns"]] == ["x0", "x1", "x2", "y"] and made.json()["format"] == "npz"
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "kind": [f"k{v}" for v in y]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    parquet = upload(client, sink.getvalue(), filename="t.parquet")
    assert parquet.status_code == 201 and parquet.json()["format"] == "parquet"
    assert parquet.json()["columns"][2]["classes"] == ["k0", "k1", "k2"]


# A pickle stream (protocol 4: an empty dict), written out by hand: the project imports no pickle
PICKLE_BYTES = b"\x80\x04}\x94."


BAD_FILES = [
    ("ragged", b"a,b,c\n1,2,3\n4,5\n", "row 2 has 2 fields"),
    ("too many fields", b"a,b\n1,2\n3,4,5\n", "row 2 has 3 fields"),
    ("empty", b"", "empty"),
    ("header only", b"a,b,c\n", "no rows"),
    ("duplicate columns", b"a,b,a\n1,2,3\n", "twice"),
    ("not utf-8", b"a,b\n1,caf\xe9\n", "not UTF-8"),
    ("not utf-8 header", b"a,\xff\n1,2\n", "not UTF-8"),
    ("no header name", b"a,,c\n1,2,3\n", "no name"),
]


@pytest.mark.parametrize(("what", "content", "words"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_is_refused_naming_why(client, what, content, words):
    assert_problem(upload(client, content), 422, field="file", words=words, kind="invalid-dataset")


def test_quoted_newlines_are_values_not_rows(client):
    made = upload(client, b'note,x,y\n"two\nlines",1,0\nplain,2,1\n')
    assert made.status_code == 201 and made.json()["rows"] == 2 and made.json()["preview"][0]["note"] == "two\nlines"


def test_hostile_npz_files_are_refused_without_being_loaded(client, app):
    holding_objects = io.BytesIO()
    np.savez(holding_objects, X=np.array([[1.0]]), y=np.array([{"a": 1}], dtype=object))
    assert_problem(upload(client, holding_objects.getvalue(), filename="o.npz"), 422, words="pickle")
    assert_problem(upload(client, PICKLE_BYTES, filename="p.npz"), 422, words="not an NPZ")
    bomb = io.BytesIO()  # 50 MB of zeros inflates from a few KB: refused from the zip's directory, before inflating
    np.savez_compressed(bomb, X=np.zeros((6_250_000, 1)), y=np.zeros(6_250_000))
    assert len(bomb.getvalue()) < 200_000
    assert app.config["SETTINGS"].max_dataset_bytes < 100_000_000  # the arrays inflate to 100 MB
    assert_problem(upload(client, bomb.getvalue(), filename="bomb.npz"), 413, words="inflated")


def test_ten_thousand_columns_are_over_the_limit(client):
    header = ",".join(f"c{i}" for i in range(10_000))
    refused = upload(client, f"{header}\n{','.join('1' * 10_000)}\n".encode())
    assert_problem(refused, 422, kind="over-limit", words="MAX_DATASET_COLUMNS")
    assert refused.json()["limit"]["requested"] == 10_000


def test_two_uploads_of_one_file_at_once_make_one_dataset(app):
    from tests.support.inprocess import http

    content = csv_bytes(300)
    answers = []

    def one() -> None:
        with http(app) as c:
            answers.append(upload(c, content, filename="same.csv"))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers).count(201) == 1 and {a.json()["id"] for a in answers} == {answers[0].json()["id"]}


def test_a_job_on_a_dataset_trains_predicts_with_labels_and_shows_its_lineage(client, train):
    dataset = upload(client, CSV).json()
    job = client.post("/api/v1/jobs", json={**job_body(dataset["id"], features=["f1", "f2"], standardize=True), "name": "on-csv"})
    assert job.status_code == 202, job.text
    spec = client.get(f"/api/v1/jobs/{job.json()['id']}", params={"include": "spec"}).json()["spec"]
    assert spec["data"]["digest"] == dataset["digest"] and spec["data"]["rows"] == N and spec["data"]["classes"] == ["blue", "red"]
    assert "X" not in spec["data"]  # no job's stored spec carries the rows
    assert train(job.json()["id"]) == "succeeded"
    done = client.get(f"/api/v1/jobs/{job.json()['id']}").json()
    assert done["summary"]["classes"] == ["blue", "red"] and done["summary"]["final_train_accuracy"] > 0.8
    answer = client.post(f"/api/v1/jobs/{done['id']}/predict", json={"X": [[2.0, 2.0], [-2.0, -2.0]]}).json()
    assert answer["labels"] == [["red"], ["blue"]] and answer["classes"] == [[1], [0]]  # bce: per row and output, as `classes`
    lineage = client.get(f"/api/v1/datasets/{dataset['id']}/jobs").json()
    assert done["id"] in [j["id"] for j in lineage["jobs"]]

    waiting = client.post("/api/v1/jobs", json=job_body(dataset["id"], features=["f1", "f2"])).json()  # queued: the dataset is in use
    assert_problem(client.delete(f"/api/v1/datasets/{dataset['id']}"), 409, kind="dataset-in-use")
    client.post(f"/api/v1/jobs/{waiting['id']}/cancel")
    assert client.delete(f"/api/v1/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/api/v1/datasets/{dataset['id']}").status_code == 404
    # the ended job keeps what it needs to be read and predicted from
    assert client.get(f"/api/v1/jobs/{done['id']}").status_code == 200
    assert client.post(f"/api/v1/jobs/{done['id']}/predict", json={"X": [[2.0, 2.0]]}).json()["labels"] == [["red"]]
    assert client.get(f"/api/v1/jobs/{done['id']}/metrics", params={"keys": "loss"}).status_code == 200
    assert_problem(client.get(f"/api/v1/jobs/{done['id']}/charts/decision_boundary"), 404, words="deleted")


def test_cross_entropy_and_mse_targets(client, train):
    dataset = upload(client, CSV).json()
    classes = client.post("/api/v1/jobs", json=job_body(dataset["id"], "cross_entropy", features=["f1", "f2"])).json()
    assert train(classes["id"]) == "succeeded"
    regression = client.post("/api/v1/jobs", json={**job_body(dataset["id"], "mse", features=["f1"]), "data": {
        "dataset": dataset["id"], "target": "score", "features": ["f1"]}}).json()
    assert train(regression["id"]) == "succeeded"
    assert "labels" not in client.post(f"/api/v1/jobs/{regression['id']}/predict", json={"X": [[1.0]]}).json()


BAD_REFERENCES = [
    ({"target": "colour"}, "data.target", "no column 'colour'"),
    ({"features": ["f1", "nope"]}, "data.features[1]", "no column 'nope'"),
    ({"features": ["f1", "city"]}, "data.features[1]", "holds text"),
    ({"features": ["f1", "label"]}, "data.features[1]", "is the target"),
    ({"target": None}, "data.target", "target"),
]


@pytest.mark.parametrize(("data", "field", "words"), BAD_REFERENCES)
def test_a_bad_reference_is_a_422_naming_the_field(client, data, field, words):
    dataset = upload(client, CSV).json()
    body = job_body(dataset["id"])
    body["data"] = {k: v for k, v in {**body["data"], **data}.items() if v is not None}
    assert_problem(client.post("/api/v1/jobs", json=body), 422, field=field, words=words)


def test_empty_nan_and_infinite_values_and_wrong_targets_are_named_with_their_row(client):
    gaps = upload(client, b"a,b,label,one,num\n1,2,x,k,0.5\n3,,y,k,0.1\n4,nan,x,k,2\n5,inf,y,k,3\n").json()
    base = {"model": net(), "loss": "bce", "epochs": 1}
    empty = client.post("/api/v1/jobs", json={**base, "data": {"dataset": gaps["id"], "target": "label", "features": ["a", "b"]}})
    assert_problem(empty, 422, field="data.features[1]", words="the first in row 2")
    nan = upload(client, b"a,b,label\n1,2,x\n3,nan,y\n4,inf,x\n").json()
    assert_problem(client.post("/api/v1/jobs", json={**base, "data": {"dataset": nan["id"], "target": "label"}}), 422,
                   field="data.features[1]", words="NaN or infinite values, the first in row 2")
    one = client.post("/api/v1/jobs", json={**base, "data": {"dataset": gaps["id"], "target": "one", "features": ["a"]}})
    assert_problem(one, 422, field="data.target", words="one class")
    mse = client.post("/api/v1/jobs", json={"model": net(1, "linear"), "loss": "mse", "epochs": 1,
                                           "data": {"dataset": gaps["id"], "target": "label", "features": ["a"]}})
    assert_problem(mse, 422, field="data.target", words="mse needs numbers")
    units = client.post("/api/v1/jobs", json={"model": net(3, "softmax"), "loss": "cross_entropy", "epochs": 1,
                                             "data": {"dataset": gaps["id"], "target": "label", "features": ["a"]}})
    assert_problem(units, 422, field="model.layers[1].units", words="2 classes")
    assert_problem(client.post("/api/v1/jobs", json={**base, "data": {"dataset": 999_999, "target": "label"}}), 422,
                   field="data.dataset", words="no dataset 999999")
    assert_problem(client.post("/api/v1/jobs", json={**base, "data": {"dataset": gaps["id"], "target": "label", "builtin": "moons"}}),
                   422, field="data.dataset", words="not builtin and dataset")


def test_a_sweep_searches_over_datasets_and_feature_lists(client):
    first, second = upload(client, CSV).json(), upload(client, csv_bytes(80)).json()
    sweep = client.post("/api/v1/sweeps", json={
        "base": job_body(first["id"]), "strategy": "grid",
        "space": {"data.dataset": [first["id"], second["id"]], "data.features": [["f1"], ["f1", "f2"]]}})
    assert sweep.status_code == 202, sweep.text
    jobs = sweep.json()["jobs"]
    specs = [client.get(f"/api/v1/jobs/{j['id']}", params={"include": "spec"}).json()["spec"]["data"] for j in jobs]
    assert sorted((d["dataset"], d["rows"], tuple(d["features"])) for d in specs) == sorted(
        (ds["id"], ds["rows"], features) for ds in (first, second) for features in (("f1",), ("f1", "f2")))
    for dataset in (first, second):
        lineage = client.get(f"/api/v1/datasets/{dataset['id']}/jobs").json()
        assert sweep.json()["id"] in lineage["sweeps"]


def test_the_client_takes_numpy_arrays_and_uploads_dataframes(app):
    import httpx
    import pandas as pd

    from bplab import Client

    with Client("http://127.0.0.1", transport=httpx.WSGITransport(app=app)) as api:
        frame = pd.DataFrame({"u": RNG.normal(size=40), "v": RNG.normal(size=40), "kind": ["a", "b"] * 20})
        dataset = api.upload_dataset(frame, name="frame")
        assert dataset["rows"] == 40 and [c["name"] for c in dataset["columns"]] == ["u", "v", "kind"]
        assert api.dataset(dataset["id"])["digest"] == dataset["digest"]
        assert dataset["id"] in [d["id"] for d in api.datasets()]
        job = api.submit({"model": net(), "loss": "bce", "data": {"X": np.array([[0.0], [1.0]]), "y": np.array([0, 1])}, "epochs": 1})
        assert job["status"] == "queued"
