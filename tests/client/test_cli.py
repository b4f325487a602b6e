"""The `bplab` CLI in-process: each command run as `bplab` runs it (`run`, click underneath) with its
output captured, the client talking to the in-process service (conftest.py: every job a command
queues is trained at once with the worker's code). Output, --json, global
options anywhere, the KEY=VALUE rule, exit codes scripts rely on, --help equal to docs/client.md.
A live server and a real unreachable address are tests/e2e/test_cli_live.py's."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from click.testing import CliRunner

from bplab import Client
from bplab.cli import Session, cli, commands_table, run
from tests.support.specs import SEED, moons

ROOT = Path(__file__).parents[2]


@pytest.fixture
def bplab(service):
    def invoke(*args: str, stdin: str | None = None) -> SimpleNamespace:
        client = Client("http://127.0.0.1", transport=httpx.WSGITransport(app=service))
        with CliRunner().isolation(input=stdin) as (out, err, _):
            code = run(list(args), Session(client=client))
        return SimpleNamespace(returncode=code, stdout=out.getvalue().decode(), stderr=err.getvalue().decode())
    return invoke


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED))
    return str(path)


def test_submit_with_overrides_and_wait(bplab, api, spec_file):
    done = bplab("--json", "submit", spec_file, "--set", "optimizer.lr=0.5", "--set", "record.every=1", "--wait")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and "spec" not in job
    assert api.spec(job["id"])["optimizer"]["lr"] == 0.5 and api.get(job["id"], include_spec=True)["spec"]["record"]["every"] == 1
    assert json.loads(bplab("--json", "show", str(job["id"])).stdout)["id"] == job["id"]
    table = bplab("trace", str(job["id"]), "--step", "0")
    assert table.returncode == 0 and "Output error signal" in table.stdout and "− 0.5 × 0.177" in table.stdout
    assert bplab("metrics", str(job["id"]), "--keys", "loss", "--csv").stdout.splitlines()[0] == "key,step,value"
    listed = bplab("--json", "ls", "--status", "succeeded", "--limit", "5")
    assert job["id"] in [j["id"] for j in json.loads(listed.stdout)]
    assert bplab("watch", str(job["id"])).returncode == 0
    from_stdin = bplab("--json", "submit", "-", stdin=json.dumps(SEED))
    assert from_stdin.returncode == 0 and json.loads(from_stdin.stdout)["status"] == "queued"  # answered before it trained


def test_one_rule_for_key_value(bplab, api, spec_file):
    """--set values are JSON when they parse; tag values are the text as typed, in submit and tag alike."""
    job = json.loads(bplab("--json", "submit", spec_file, "--tag", "flag=true", "--tag", "n=1", "--tag", "none=null").stdout)
    assert job["tags"] == {"flag": "true", "n": "1", "none": "null"}
    tagged = json.loads(bplab("--json", "tag", str(job["id"]), "flag=true", "other=[1, 2]").stdout)
    assert tagged["tags"]["flag"] == "true" and tagged["tags"]["other"] == "[1, 2]"
    clone = json.loads(bplab("--json", "clone", str(job["id"]), "--set", "optimizer.lr=0.25", "--set", "batch_size=full").stdout)
    assert api.spec(clone["id"])["optimizer"]["lr"] == 0.25 and api.spec(clone["id"])["batch_size"] == "full"
    bad = bplab("submit", spec_file, "--set", "nonsense")
    assert bad.returncode == 2 and "use KEY=VALUE" in bad.stderr


def test_exit_codes(bplab, spec_file, tmp_path):
    bad = bplab("submit", spec_file, "--set", "optimizer.lr=-1")
    assert bad.returncode == 2 and "optimizer.lr" in bad.stderr and "must be > 0" in bad.stderr
    assert bplab("submit", str(tmp_path / "missing.json")).returncode == 2
    assert bplab("show", "999999999").returncode == 3
    assert bplab("show", "not-a-number").returncode == 2 and "Usage: bplab show" in bplab("show", "x").stderr
    assert bplab("no-such-command").returncode == 2
    diverging = tmp_path / "diverge.json"
    diverging.write_text(json.dumps({"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]},
                                     "loss": "mse", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 1e6}, "steps": 60}))
    assert bplab("submit", str(diverging), "--wait").returncode == 1
    job = json.loads(bplab("--json", "submit", spec_file, "--wait").stdout)
    assert bplab("cancel", str(job["id"])).returncode == 5
    assert bplab("--help").returncode == 0 and bplab("ls", "--help").returncode == 0


def test_sweep_from_yaml_and_leaderboard(bplab, tmp_path):
    import yaml

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({"name": "cli-sweep", "base": moons(epochs=2), "strategy": "grid",
                                          "space": {"optimizer.lr": [0.01, 0.1]}, "max_parallel": 2}))
    done = bplab("sweep", str(sweep_file), "--wait")
    assert done.returncode == 0, done.stderr
    assert "rank" in done.stdout and "optimizer.lr" in done.stdout
    sweep_id = int(done.stdout.split()[1])
    assert len(json.loads(bplab("--json", "leaderboard", str(sweep_id)).stdout)) == 2
    assert bplab("leaderboard", str(sweep_id), "--csv").stdout.startswith("rank,trial,optimizer.lr")


def test_global_options_are_taken_anywhere_on_the_line(bplab, spec_file):
    job = json.loads(bplab("submit", spec_file, "--json", "--wait").stdout)
    assert json.loads(bplab("ls", "--limit", "1", "--json").stdout)[0]["id"] == job["id"]
    assert json.loads(bplab("--json", "show", str(job["id"])).stdout)["id"] == job["id"]
    listed = bplab("ls", "--limit", "1").stdout  # without --json: a line for people
    assert listed.split()[0] == str(job["id"]) and not listed.lstrip().startswith("[")
    session = Session()
    with CliRunner().isolation():
        run(["--url", "http://first:1", "experiments", "--help"], session)
    assert session.url == "http://first:1"
    with CliRunner().isolation():
        run(["--url", "http://first:1", "ls", "--url", "http://later:2", "--token", "t", "--help"], session)
    assert (session.url, session.token) == ("http://later:2", "t")  # the later one wins


def test_every_capability_has_a_command(bplab, api, spec_file, tmp_path):
    import numpy as np

    job = json.loads(bplab("--json", "submit", spec_file, "--name", "cli-seed", "--tag", "team=lab", "--wait").stdout)
    job_id = str(job["id"])
    clone = bplab("clone", job_id, "--set", "optimizer.lr=0.5", "--name", "cli-clone", "--wait", "--json")
    assert clone.returncode == 0, clone.stderr
    clone = json.loads(clone.stdout)
    assert clone["name"] == "cli-clone" and clone["tags"] == {"team": "lab", "cloned_from": job_id}
    diff = bplab("diff", job_id, str(clone["id"]))
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines()[0] == "lr: 0.1 -> 0.5" and "part at step 0" in diff.stdout
    assert json.loads(bplab("--json", "diff", job_id, str(clone["id"])).stdout)["spec_differences"]["lr"] == {"a": 0.1, "b": 0.5}
    predicted = bplab("predict", job_id, "--rows", "[[0.5, 0.1]]")
    assert predicted.returncode == 0 and predicted.stdout.startswith("[0.5, 0.1] -> [")
    assert bplab("predict", job_id, "--rows", "0.5").returncode == 2
    assert bplab("predict", job_id).returncode == 2
    saved = bplab("model", job_id, "-o", str(tmp_path / "m.npz"))
    assert saved.returncode == 0, saved.stderr
    with np.load(tmp_path / "m.npz", allow_pickle=False) as arrays:
        assert arrays["weights_1"].tolist() == api.model(job["id"])["weights"][1]
        assert json.loads(str(arrays["layers_json"]))[0] == {"units": 2, "activation": "relu"}
    exported = bplab("export", job_id, "--format", "onnx", "-o", str(tmp_path / "m.onnx"))
    assert exported.returncode == 0 and "as onnx" in exported.stdout, exported.stderr
    import onnxruntime

    onnx_out = onnxruntime.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": np.array([[0.5, 0.1]])})[0]
    assert abs(onnx_out[0][0] - api.predict(job["id"], [[0.5, 0.1]])["outputs"][0][0]) <= 1e-12
    described = json.loads(bplab("--json", "export", job_id, "--format", "safetensors", "-o", str(tmp_path / "m.safetensors")).stdout)
    assert described["format"] == "safetensors" and described["bytes"] == (tmp_path / "m.safetensors").stat().st_size
    assert bplab("export", job_id, "--format", "pickle").returncode == 2
    tagged = bplab("tag", job_id, "stage=done", "--remove", "team")
    assert tagged.returncode == 0 and tagged.stdout.strip() == f"job {job_id} tags: stage=done"
    assert "cli-renamed" in bplab("rename", job_id, "cli-renamed").stdout
    assert bplab("tag", job_id).returncode == 2
    assert any(e["name"] == "default" for e in json.loads(bplab("experiments", "--json").stdout))
    assert bplab("delete", str(clone["id"])).stdout.strip() == f"deleted job {clone['id']}"
    assert bplab("delete", str(clone["id"])).returncode == 3
    assert bplab("diff", job_id, str(clone["id"])).returncode == 3
    assert bplab("archive", "no-such-experiment").returncode == 3
    archived = bplab("archive", "default")
    assert archived.returncode == 0 and archived.stdout.startswith("archived ") and " jobs of default" in archived.stdout
    assert bplab("archive", "default", "--restore").stdout.startswith("restored ")
    opened = bplab("open", job_id, "--print-only")
    assert opened.returncode == 0 and opened.stdout.strip() == f"http://127.0.0.1/jobs/{job_id}"
    assert bplab("open", "999999", "--print-only").returncode == 3


def test_sweep_commands(bplab, service, tmp_path):
    sweep_file = tmp_path / "sweep.json"
    sweep_file.write_text(json.dumps({"name": "cli-sweeps", "base": moons(epochs=2), "space": {"optimizer.lr": [0.01, 0.1, 1.0]},
                                      "max_parallel": 1}))
    sweep_id = json.loads(bplab("--json", "sweep", str(sweep_file)).stdout)["id"]
    listed = bplab("sweeps")
    assert listed.returncode == 0 and listed.stdout.split()[0] == str(sweep_id)
    assert json.loads(bplab("sweeps", "list", "--json").stdout)[0]["id"] == sweep_id
    shown = bplab("sweeps", "show", str(sweep_id))
    assert shown.returncode == 0 and shown.stdout.startswith(f"sweep {sweep_id} cli-sweeps (finished)"), shown.stdout
    assert bplab("sweeps", "importance", str(sweep_id)).returncode == 0
    assert bplab("sweeps", "cancel", str(sweep_id)).returncode == 5  # already finished: a conflict
    assert bplab("sweeps", "show", "999999").returncode == 3


def test_help_of_every_command_is_the_table_in_the_docs():
    assert commands_table() in (ROOT / "docs" / "client.md").read_text(), "paste `commands_table()` into docs/client.md"
    for name, command in cli.commands.items():
        shown = CliRunner().invoke(cli, [name, "--help"])
        assert shown.exit_code == 0 and command.short_help in " ".join(shown.output.split()), name


def test_a_closed_output_ends_quietly():
    """`bplab ls | head`: the reader is gone before bplab writes; no traceback, no message."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "bplab.cli", "--help"], stdout=write, stderr=subprocess.PIPE, text=True,
                              timeout=60, cwd=ROOT)
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_datasets_commands_and_submit_with_a_dataset_file(bplab, tmp_path):
    rows = ["x1,x2,label"] + [f"{i / 10},{(i % 7) / 7},{'yes' if i % 2 else 'no'}" for i in range(60)]
    data = tmp_path / "mine.csv"
    data.write_text("\n".join(rows) + "\n")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]},
                                "loss": "bce", "data": {"builtin": "moons", "target": "label"}, "epochs": 2}))
    uploaded = bplab("datasets", "upload", str(data), "--name", "mine")
    assert uploaded.returncode == 0 and "60 rows" in uploaded.stdout and "label (string)" in uploaded.stdout, uploaded.stderr
    job = bplab("--json", "submit", str(spec), "--dataset", str(data), "--wait")  # the same file: the same dataset, then the job
    assert job.returncode == 0, job.stderr
    found = json.loads(job.stdout)
    assert found["status"] == "succeeded" and found["summary"]["classes"] == ["no", "yes"]
    listed = json.loads(bplab("--json", "datasets").stdout)
    assert [d["name"] for d in listed].count("mine") == 1
    dataset_id = listed[0]["id"]
    shown = bplab("datasets", "show", str(dataset_id))
    assert shown.returncode == 0 and f"used by jobs [{found['id']}]" in shown.stdout and "classes ['no', 'yes']" in shown.stdout
    assert bplab("datasets", "delete", str(dataset_id)).returncode == 0
    assert bplab("datasets", "show", str(dataset_id)).returncode != 0


def test_landscape_waits_for_the_worker_and_saves_the_contour_plot(bplab, api, tmp_path):
    job = api.submit(moons(epochs=2))
    api.wait(job["id"])
    saved = tmp_path / "landscape.svg"
    done = bplab("landscape", str(job["id"]), "--points", "11", "--step", "4", "-o", str(saved))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"job {job['id']} after 4 steps: loss ") and "11×11 grid" in done.stdout
    assert saved.read_text().startswith("<svg") and 'class="path"' in saved.read_text()
    found = json.loads(bplab("--json", "landscape", str(job["id"]), "--points", "11", "--step", "4").stdout)
    assert found["step"] == 4 and [p["step"] for p in found["path"]][:2] == [0, 1] and found == api.landscape(job["id"], step=4, points=11)
    refused = bplab("landscape", str(job["id"]), "--step", "99")
    assert refused.returncode != 0 and "step is 0 to 16" in refused.stderr


def test_fork_and_continue_wait_and_say_where_they_start(bplab, api):
    job = api.submit(moons(optimizer={"name": "sgd", "lr": 0.1}))
    api.wait(job["id"])
    forked = bplab("--json", "fork", str(job["id"]), "--step", "8", "--set", "optimizer.lr=0.05", "--wait")
    assert forked.returncode == 0, forked.stderr
    fork = json.loads(forked.stdout)
    assert fork["status"] == "succeeded" and fork["forked_from"] == {"job": job["id"], "step": 8}
    assert api.spec(fork["id"])["optimizer"]["lr"] == 0.05
    more = bplab("--json", "continue", str(job["id"]), "--epochs", "2", "--wait")
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["progress"]["total_steps"] == 56 and json.loads(more.stdout)["forked_from"]["step"] == 40
    refused = bplab("fork", str(job["id"]), "--step", "3", "--set", "model.init=zeros")
    assert refused.returncode != 0 and "set.model.init" in refused.stderr


def test_a_finished_sweep_is_extended_without_training_a_finished_trial_again(bplab, api):
    sweep = api.sweep({"name": "extended", "base": moons(epochs=1), "strategy": "tpe", "trials": 3, "seeds": 1,
                       "space": {"optimizer.lr": {"log_uniform": [0.001, 0.1]}}})
    first = api.wait_sweep(sweep["id"], progress=False)
    assert first["status"] == "finished" and len(first["jobs"]) == 3
    done = bplab("--json", "sweeps", "extend", str(sweep["id"]), "--trials", "2", "--wait")
    assert done.returncode == 0, done.stderr
    after = json.loads(done.stdout)
    assert after["status"] == "finished" and after["progress"]["planned_jobs"] == 5 and len(after["jobs"]) == 5
    before = {j["id"]: j["finished_at"] for j in first["jobs"]}
    assert {j["id"]: j["finished_at"] for j in after["jobs"] if j["id"] in before} == before  # not trained again
    assert sorted(row["trial"] for row in after["leaderboard"]) == [0, 1, 2, 3, 4]
    grid = api.sweep({"name": "grid", "base": moons(epochs=1), "space": {"optimizer.lr": [0.01, 0.1]}})
    refused = bplab("sweeps", "extend", str(grid["id"]), "--trials", "1")
    assert refused.returncode != 0 and "is a grid" in refused.stderr
    best = after["leaderboard"][0]
    continued = bplab("--json", "sweeps", "continue", str(sweep["id"]), "--epochs", "2", "--wait")
    assert continued.returncode == 0, continued.stderr
    [job] = json.loads(continued.stdout)  # one seed: one job
    assert job["status"] == "succeeded" and job["forked_from"] == {"job": best["jobs"][0], "step": 8}
    assert job["progress"]["total_steps"] == 24 and api.spec(job["id"])["epochs"] == 3


def test_trace_of_a_step_not_recorded_waits_for_its_replay(bplab, api):
    job = api.submit(moons(record={"every": 10, "trace": [10]}))
    api.wait(job["id"])
    table = bplab("trace", str(job["id"]), "--step", "13")
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("Step 13") and "∂L/∂W" in table.stdout
    assert api.trace(job["id"], 13)["replayed"] is True and api.trace(job["id"], 10)["replayed"] is False
    assert api.gradients(job["id"], 13).keys() == {"dense_1.weight", "dense_1.bias", "dense_2.weight", "dense_2.bias"}


def test_replay_waits_for_the_worker_and_says_which_checkpoint_it_started_from(bplab, api):
    job = api.submit(moons(record={"every": 10, "gradients": "full", "trace": [20], "checkpoints": 10}))
    api.wait(job["id"])
    kept = bplab("checkpoints", str(job["id"]))
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() == f"job {job['id']} keeps its state every 10 steps and after its last: 4 kept " \
        f"({api.checkpoints(job['id'])['bytes']:,} bytes) at steps 10, 20, 30, 40"
    asked = bplab("replay", str(job["id"]), "--step", "34")
    assert asked.returncode == 0 and "asked; a worker replays it" in asked.stdout, asked.stderr
    done = bplab("replay", str(job["id"]), "--step", "34", "--step", "20", "--step", "5", "--wait")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("step 34 (replayed from the checkpoint at step 30): loss ") and "dense_1.weight" in lines[0]
    assert lines[1].startswith("step 20 (recorded): loss ") and lines[2].startswith("step 5 (replayed from the start): loss ")
    assert "[1/3] replaying job" in done.stderr
    as_json = json.loads(bplab("--json", "replay", str(job["id"]), "--step", "34", "--wait").stdout)[0]
    assert as_json["replayed_from"] == 30 and as_json["gradients"] == api.gradients(job["id"], 34)
    deleted = bplab("checkpoints", str(job["id"]), "--delete")
    assert deleted.returncode == 0 and "were deleted at" in deleted.stdout, deleted.stderr
    refused = bplab("replay", str(job["id"]), "--step", "33", "--wait")
    assert refused.returncode != 0 and "kept checkpoints were deleted" in refused.stderr
