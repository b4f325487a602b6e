"""The API as served by gunicorn and managed from the `flask` command line, in real processes:
AUTH=off is refused beyond loopback, a bad setting stops start-up naming its variable, and the
tokens CLI works as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.migrate import upgrade
from tests.support.services import ROOT, Stack, free_port, port_open, wait_for

BIN = Path(sys.executable).parent


def _gunicorn(tmp_path: Path, bind: str, **env: str) -> tuple[subprocess.Popen, Path]:
    base = Stack(f"sqlite:///{tmp_path / 'db.sqlite'}", "redis://127.0.0.1:1/0").env
    log = tmp_path / "api.log"
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-c", "python:services.api.gunicorn_conf", "--bind", bind,
                             "--workers", "1", "services.api.wsgi:app"], cwd=ROOT, env={**base, **env}, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    return proc, log


@pytest.mark.parametrize("auth, host, bind, starts", [
    ("off", "127.0.0.1", "0.0.0.0", False),   # gunicorn listens beyond loopback: refused by its start-up hook
    ("off", "0.0.0.0", "127.0.0.1", False),   # API_HOST says it is exposed: refused by the app factory
    ("off", "127.0.0.1", "127.0.0.1", True),  # the `make up` default
    ("on", "0.0.0.0", "0.0.0.0", True),       # compose
])
def test_auth_off_is_refused_unless_the_api_listens_on_loopback(tmp_path, auth, host, bind, starts):
    port = free_port()
    proc, log = _gunicorn(tmp_path, f"{bind}:{port}", AUTH=auth, API_HOST=host)
    try:
        if starts:
            wait_for(lambda: port_open("127.0.0.1", port), 30, what="gunicorn")
            assert proc.poll() is None
        else:
            assert proc.wait(60) != 0
            assert "refusing to start: AUTH=off" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.parametrize("variable, value, words", [
    ("FLUSH_SECONDS", "fast", "FLUSH_SECONDS: Input should be a valid number"),
    ("AUTH", "maybe", "AUTH: Input should be 'on' or 'off'"),
    ("JOB_SOFT_TIME_LIMIT", "9999", "JOB_SOFT_TIME_LIMIT (9999) must not exceed JOB_HARD_TIME_LIMIT (3900)"),
])
def test_a_bad_setting_stops_start_up_naming_its_variable(tmp_path, variable, value, words):
    proc, log = _gunicorn(tmp_path, f"127.0.0.1:{free_port()}", **{variable: value})
    try:
        assert proc.wait(60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert words in log.read_text(), log.read_text()[-2000:]
    worker = subprocess.run([str(BIN / "celery"), "-A", "worker.app", "inspect", "ping"], cwd=ROOT,
                            env={**Stack("sqlite://", "redis://127.0.0.1:1/0").env, variable: value},
                            capture_output=True, text=True, timeout=60)
    assert worker.returncode != 0 and words in worker.stderr, worker.stderr[-2000:]


def test_the_tokens_command_line(tmp_path):
    env = Stack(f"sqlite:///{tmp_path / 'db.sqlite'}", "redis://127.0.0.1:1/0").env
    upgrade(env["DATABASE_URL"])

    def flask(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "flask"), "--app", "services.api", "tokens", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    created = flask("create", "ci", "--owner", "alice")
    assert created.returncode == 0 and created.stdout.startswith("bpl_"), created.stderr
    listed = flask("list")
    assert "ci\talice" in listed.stdout and created.stdout.strip() not in listed.stdout
    assert flask("revoke", "ci").returncode == 0
    assert "revoked" in flask("list").stdout


@pytest.mark.parametrize("worker_class", ["services.api.gunicorn_worker.SyncWorker", "services.api.gunicorn_worker.ThreadWorker"])
def test_what_gunicorn_refuses_itself_is_problem_json_and_the_access_log_keeps_no_query(tmp_path, worker_class):
    import httpx

    port = free_port()
    db = tmp_path / "db.sqlite"
    upgrade(f"sqlite:///{db}")
    proc, log = _gunicorn(tmp_path, f"127.0.0.1:{port}", DATABASE_URL=f"sqlite:///{db}", GUNICORN_CMD_ARGS=f"--worker-class {worker_class}")
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, what="gunicorn")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            long_line = client.get("/api/v1/jobs", params={"experiment": "x" * 5000})
            big_header = client.get("/healthz", headers={"X-Big": "y" * 9000})
            secret = client.get("/healthz", params={"token": "bpl_secret_in_the_url"})
        for answer, status in ((long_line, 414), (big_header, 431)):
            assert answer.status_code == status and answer.headers["Content-Type"] == "application/problem+json", answer.text
            body = answer.json()
            assert body["status"] == status and body["type"].endswith("/docs/problems#" + ("uri-too-long" if status == 414 else
                                                                                            "request-header-fields-too-large"))
        assert secret.status_code == 400  # an unknown query parameter; and it never reaches the log
    finally:
        proc.terminate()
        proc.wait(20)
    text = log.read_text()
    assert '"GET /healthz HTTP/1.1" 400' in text and "bpl_secret_in_the_url" not in text, text[-2000:]
