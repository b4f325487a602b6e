"""`bplab` as a person runs it, against a live server (tests/client/test_cli.py runs every command
in-process): a job submitted and waited for, and an address nothing answers is exit 4."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.services import free_port
from tests.support.specs import SEED

ROOT = Path(__file__).parents[2]


def bplab(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bplab.cli", "--url", url, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_submit_and_wait_against_a_live_server(stack, tmp_path):
    spec = tmp_path / "seed.json"
    spec.write_text(json.dumps(SEED))
    done = bplab(stack.url, "--json", "submit", str(spec), "--set", "optimizer.lr=0.5", "--wait")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    assert bplab(stack.url, "ls", "--limit", "1").stdout.split()[0] == str(json.loads(done.stdout)["id"])


def test_an_address_nothing_answers_is_exit_4():
    done = bplab(f"http://127.0.0.1:{free_port()}", "show", "1")
    assert done.returncode == 4 and done.stderr.startswith("bplab: "), done.stderr
