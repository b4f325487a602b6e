"""A job's loss landscape through the API (the app in-process; the worker's own code computes what the
API queued): 202 until a worker has computed it, then the grid and the path, kept; the contour plot as
SVG; a running job, a step it never took and a grid too big for the job refused, each naming what."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.store.db import session_factory
from services.store.models import Computation
from tests.support.inprocess import compute_asked
from tests.support.problems import assert_problem
from tests.support.specs import dead_relu


@pytest.fixture
def compute(app):
    """Compute every landscape the API has asked for, as a training worker would; how many."""
    return lambda: compute_asked(app.config["SETTINGS"])


def test_a_landscape_is_computed_once_by_a_worker_and_then_served(app, client, train, compute):
    job = client.post("/api/v1/jobs", json=dead_relu(0.5)).json()
    assert train(job["id"]) == "succeeded"
    url = f"/api/v1/jobs/{job['id']}/landscape"
    pending = client.get(url, params={"points": 21})
    assert pending.status_code == 202 and pending.headers["Retry-After"] == "1"
    assert pending.json() | {"detail": None} == {"status": "pending", "job_id": job["id"], "step": 200, "detail": None}
    assert client.get(url, params={"points": 21}).status_code == 202  # asked again: still one computation
    assert compute() == 1
    done = client.get(url, params={"points": 21})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["step"] == 200 and body["directions"] == "top" and body["points"] == 21 and len(body["alpha"]) == 21
    assert len(body["loss"]) == 21 and all(len(row) == 21 for row in body["loss"])
    assert body["loss"][10][10] == body["loss_at_step"]  # the grid's middle is the step's own weights
    assert body["eigenvalues"][0] >= body["eigenvalues"][1] > 0
    steps = [p["step"] for p in body["path"]]
    assert steps == [*range(0, 200, 20), 200]  # every recorded step (record.every 20) and the last
    assert body["path"][-1] | {"loss": None} == {"step": 200, "alpha": 0.0, "beta": 0.0, "loss": None, "off_plane": 0.0}
    assert body["path"][0]["alpha"] <= 0 and body["path"][0]["beta"] <= 0  # oriented: the run comes from the lower left
    assert client.get(url, params={"points": 21}).json()["computed_at"] == body["computed_at"]  # kept, not computed again
    assert compute() == 0
    svg = client.get(url, params={"points": 21}, headers={"Accept": "image/svg+xml"})
    assert svg.headers["Content-Type"].startswith("image/svg+xml")
    assert 'class="path"' in svg.text and 'class="contour"' in svg.text and 'class="at-step"' in svg.text
    # another step, other directions: another computation
    assert client.get(url, params={"step": 40, "directions": "random", "points": 11}).status_code == 202
    assert compute() == 1
    early = client.get(url, params={"step": 40, "directions": "random", "points": 11}).json()
    assert early["eigenvalues"] is None and early["span"] >= 1.0 and 40 in [p["step"] for p in early["path"]]
    at = next(p for p in early["path"] if p["step"] == 40)
    assert at["alpha"] == at["beta"] == 0.0 and early["loss"][5][5] == early["loss_at_step"]
    assert client.delete(f"/api/v1/jobs/{job['id']}").status_code == 204  # what was kept goes with the job
    with session_factory(app.config["SETTINGS"].database_url)() as session:
        assert session.scalar(select(func.count()).select_from(Computation).where(Computation.job_id == job["id"])) == 0


def test_what_cannot_be_drawn_is_refused_naming_why(client, train, compute):
    waiting = client.post("/api/v1/jobs", json=dead_relu(0.5)).json()  # queued: nobody trains it here
    assert_problem(client.get(f"/api/v1/jobs/{waiting['id']}/landscape"), 409, kind="not-ended")
    job = client.post("/api/v1/jobs", json=dead_relu(0.5)).json()
    assert train(job["id"]) == "succeeded"
    url = f"/api/v1/jobs/{job['id']}/landscape"
    assert_problem(client.get(url, params={"step": 201}), 400, field="step", kind="bad-query", words="0 to 200")
    assert_problem(client.get(url, params={"points": 102}), 400, field="points", kind="bad-query")
    assert_problem(client.get(url, params={"directions": "sideways"}), 400, field="directions", kind="bad-query")
    assert_problem(client.get(url, params={"span": 0}), 400, field="span", kind="bad-query")
    assert_problem(client.get("/api/v1/jobs/999999/landscape"), 404, kind="not-found")


def test_a_grid_too_costly_for_the_network_is_refused_once_and_asked_again_after(client, train, compute):
    wide = {**dead_relu(0.5), "model": {"layers": [{"units": 64, "activation": "relu"}, {"units": 64, "activation": "relu"},
                                                  {"units": 1, "activation": "sigmoid"}]},
            "data": {"builtin": "moons", "n_samples": 10_000}, "epochs": 1, "batch_size": 5000}
    job = client.post("/api/v1/jobs", json=wide).json()
    assert train(job["id"]) == "succeeded"
    url = f"/api/v1/jobs/{job['id']}/landscape"
    assert client.get(url, params={"points": 101}).status_code == 202
    compute()
    refused = assert_problem(client.get(url, params={"points": 101}), 422, field="points", kind="over-limit", words="fewer points")
    assert refused["limit"]["name"] == "LANDSCAPE_MAX_WORK"
    assert client.get(url, params={"points": 101}).status_code == 202  # forgotten: asking again tries again
