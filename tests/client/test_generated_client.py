"""A typed client generated from the live OpenAPI document with openapi-python-client (the usual way
people get a client for a REST service) generates without a warning and works: it submits the post's
example, follows it to the end and reads what it recorded, every answer parsed into its model."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.specs import SEED

BIN = Path(sys.executable).parent
PACKAGE = "backprop_lab_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory, stack):
    out = tmp_path_factory.mktemp("generated")
    done = subprocess.run([str(BIN / "openapi-python-client"), "generate", "--url", f"{stack.url}/api/v1/openapi.json",
                           "--output-path", str(out / PACKAGE), "--meta", "none"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "warning" not in said.lower() and "error" not in said.lower(), said
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_a_generated_client_trains_the_posts_example(generated, stack):
    from backprop_lab_client.api.health import ready
    from backprop_lab_client.api.jobs import get_job, get_job_spec, list_jobs, submit_job
    from backprop_lab_client.api.model import predict
    from backprop_lab_client.api.recorded import get_gradients, get_metrics
    from backprop_lab_client.models import Job, JobList, JobStatus, JobSubmission, PredictRequest, Problem

    client = generated.Client(base_url=stack.url, raise_on_unexpected_status=True)
    assert ready.sync(client=client).ready

    submitted = submit_job.sync(client=client, body=JobSubmission.from_dict({**SEED, "name": "generated-client"}))
    assert isinstance(submitted, Job) and submitted.status == JobStatus.QUEUED and submitted.name == "generated-client"
    deadline = time.monotonic() + 60
    job = submitted
    while job.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DIVERGED, JobStatus.CANCELLED):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = get_job.sync(submitted.id, client=client)
    assert job.status == JobStatus.SUCCEEDED and job.progress.step == 1

    metrics = get_metrics.sync(job.id, client=client, keys="loss")
    assert metrics["loss"].steps == [0] and metrics["loss"].values[0] == pytest.approx(0.76881, abs=1e-5)
    gradients = get_gradients.sync(job.id, client=client, step=0)
    assert gradients.gradients["dense_2.weight"] == [[0.17702364957441255, 0.06973658922628374]]
    assert get_job_spec.sync(job.id, client=client).optimizer.lr == SEED["optimizer"]["lr"]
    prediction = predict.sync(job.id, client=client, body=PredictRequest.from_dict({"X": [[1.0, 2.0]]}))
    assert 0 < prediction.outputs[0][0] < 1

    listed = list_jobs.sync(client=client, limit=1)
    assert isinstance(listed, JobList) and listed.jobs[0].id == job.id

    client = generated.Client(base_url=stack.url)  # problems parse into their model too
    missing = get_job.sync(999_999, client=client)
    assert isinstance(missing, Problem) and missing.status == 404 and missing.type_.endswith("#not-found")
