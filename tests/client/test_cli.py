"""The `bplab` CLI against a live server: output, --json, exit codes scripts can rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bplab import Client
from tests.support.services import free_port
from tests.support.specs import SEED, moons

ROOT = Path(__file__).parents[2]


def bplab(stack_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bplab.cli", "--url", stack_url, *args], input=stdin, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED))
    return str(path)


def test_submit_with_overrides_and_wait(stack, spec_file):
    done = bplab(stack.url, "--json", "submit", spec_file, "--set", "optimizer.lr=0.5", "--set", "record.every=1", "--wait")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and "spec" not in job
    with Client(stack.url) as client:
        assert client.spec(job["id"])["optimizer"]["lr"] == 0.5 and client.get(job["id"], include_spec=True)["spec"]["record"]["every"] == 1
    shown = bplab(stack.url, "--json", "show", str(job["id"]))
    assert json.loads(shown.stdout)["id"] == job["id"]
    table = bplab(stack.url, "trace", str(job["id"]), "--step", "0")
    assert table.returncode == 0 and "Output error signal" in table.stdout and "− 0.5 × 0.177" in table.stdout
    csv_out = bplab(stack.url, "metrics", str(job["id"]), "--keys", "loss", "--csv")
    assert csv_out.stdout.splitlines()[0] == "key,step,value"
    listed = bplab(stack.url, "--json", "ls", "--status", "succeeded", "--limit", "5")
    assert job["id"] in [j["id"] for j in json.loads(listed.stdout)]
    assert bplab(stack.url, "watch", str(job["id"])).returncode == 0


def test_exit_codes(stack, spec_file, tmp_path):
    bad = bplab(stack.url, "submit", spec_file, "--set", "optimizer.lr=-1")
    assert bad.returncode == 2 and "optimizer.lr" in bad.stderr and "must be > 0" in bad.stderr
    assert bplab(stack.url, "submit", spec_file, "--set", "nonsense").returncode == 2
    assert bplab(stack.url, "show", "999999999").returncode == 3
    assert bplab(f"http://127.0.0.1:{free_port()}", "show", "1").returncode == 4
    diverging = tmp_path / "diverge.json"
    diverging.write_text(json.dumps({"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]},
                                     "loss": "mse", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 1e6}, "steps": 60}))
    assert bplab(stack.url, "submit", str(diverging), "--wait").returncode == 1
    job = json.loads(bplab(stack.url, "--json", "submit", spec_file, "--wait").stdout)
    assert bplab(stack.url, "cancel", str(job["id"])).returncode == 5


def test_sweep_from_yaml_and_leaderboard(stack, tmp_path):
    import yaml

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({"name": "cli-sweep", "base": moons(epochs=2), "strategy": "grid",
                                          "space": {"optimizer.lr": [0.01, 0.1]}, "max_parallel": 2}))
    done = bplab(stack.url, "sweep", str(sweep_file), "--wait")
    assert done.returncode == 0, done.stderr
    assert "rank" in done.stdout and "optimizer.lr" in done.stdout
    sweep_id = int(done.stdout.split()[1])
    board = json.loads(bplab(stack.url, "--json", "leaderboard", str(sweep_id)).stdout)
    assert len(board) == 2
    assert bplab(stack.url, "leaderboard", str(sweep_id), "--csv").stdout.startswith("rank,trial,optimizer.lr")


def test_global_options_are_taken_anywhere_on_the_line(stack, spec_file):
    job = json.loads(bplab(stack.url, "submit", spec_file, "--json", "--wait").stdout)
    after = bplab("http://127.0.0.1:9", "ls", "--limit", "1", "--json", "--url", stack.url)  # the later --url wins
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)[0]["id"] == job["id"]
    before = bplab(stack.url, "--json", "show", str(job["id"]))
    assert json.loads(before.stdout)["id"] == job["id"]
    listed = bplab(stack.url, "ls", "--limit", "1").stdout  # without --json: a line for people
    assert listed.split()[0] == str(job["id"]) and not listed.lstrip().startswith("[")


def test_every_capability_has_a_command(stack, spec_file, tmp_path):
    import numpy as np

    job = json.loads(bplab(stack.url, "--json", "submit", spec_file, "--name", "cli-seed", "--tag", "team=lab", "--wait").stdout)
    job_id = str(job["id"])
    clone = bplab(stack.url, "clone", job_id, "--set", "optimizer.lr=0.5", "--name", "cli-clone", "--wait", "--json")
    assert clone.returncode == 0, clone.stderr
    clone = json.loads(clone.stdout)
    assert clone["name"] == "cli-clone" and clone["tags"] == {"team": "lab", "cloned_from": job_id}
    diff = bplab(stack.url, "diff", job_id, str(clone["id"]))
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines()[0] == "lr: 0.1 -> 0.5" and "part at step 0" in diff.stdout
    assert json.loads(bplab(stack.url, "--json", "diff", job_id, str(clone["id"])).stdout)["spec_differences"]["lr"] == {"a": 0.1, "b": 0.5}
    predicted = bplab(stack.url, "predict", job_id, "--rows", "[[0.5, 0.1]]")
    assert predicted.returncode == 0 and predicted.stdout.startswith("[0.5, 0.1] -> [")
    assert bplab(stack.url, "predict", job_id, "--rows", "0.5").returncode == 2
    saved = bplab(stack.url, "model", job_id, "-o", str(tmp_path / "m.npz"))
    assert saved.returncode == 0, saved.stderr
    with np.load(tmp_path / "m.npz", allow_pickle=False) as arrays:
        with Client(stack.url) as client:
            assert arrays["weights_1"].tolist() == client.model(job["id"])["weights"][1]
        assert json.loads(str(arrays["layers_json"]))[0] == {"units": 2, "activation": "relu"}
    tagged = bplab(stack.url, "tag", job_id, "stage=done", "--remove", "team")
    assert tagged.returncode == 0 and tagged.stdout.strip() == f"job {job_id} tags: stage=done"
    assert "cli-renamed" in bplab(stack.url, "rename", job_id, "cli-renamed").stdout
    assert bplab(stack.url, "tag", job_id).returncode == 2
    experiments = json.loads(bplab(stack.url, "experiments", "--json").stdout)
    assert any(e["name"] == "default" for e in experiments)
    assert bplab(stack.url, "delete", str(clone["id"])).stdout.strip() == f"deleted job {clone['id']}"
    assert bplab(stack.url, "delete", str(clone["id"])).returncode == 3
    assert bplab(stack.url, "diff", job_id, str(clone["id"])).returncode == 3


def test_sweep_commands(stack, tmp_path):
    sweep_file = tmp_path / "sweep.json"
    sweep_file.write_text(json.dumps({"name": "cli-sweeps", "base": moons(epochs=5000), "space": {"optimizer.lr": [0.01, 0.1, 1.0]},
                                      "max_parallel": 1}))
    sweep_id = json.loads(bplab(stack.url, "--json", "sweep", str(sweep_file)).stdout)["id"]
    listed = bplab(stack.url, "sweeps")
    assert listed.returncode == 0 and listed.stdout.split()[0] == str(sweep_id)
    assert json.loads(bplab(stack.url, "sweeps", "list", "--json").stdout)[0]["id"] == sweep_id
    cancelled = bplab(stack.url, "sweeps", "cancel", str(sweep_id))
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"sweep {sweep_id}: cancelled"
    assert bplab(stack.url, "sweeps", "cancel", str(sweep_id)).returncode == 5
    shown = bplab(stack.url, "sweeps", "show", str(sweep_id))
    assert shown.returncode == 0 and shown.stdout.startswith(f"sweep {sweep_id} cli-sweeps (cancelled)")
    assert bplab(stack.url, "sweeps", "importance", str(sweep_id)).returncode == 5  # not enough finished points: a conflict
    assert bplab(stack.url, "sweeps", "show", "999999").returncode == 3


def test_open_prints_the_job_page(stack, spec_file):
    job = json.loads(bplab(stack.url, "--json", "submit", spec_file).stdout)
    opened = bplab(stack.url, "open", str(job["id"]), "--print-only")
    assert opened.returncode == 0 and opened.stdout.strip() == f"{stack.url}/jobs/{job['id']}"
    assert bplab(stack.url, "open", "999999", "--print-only").returncode == 3
