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
