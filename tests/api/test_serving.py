"""The API as served by its HTTP server (services/api/serve.py) and managed from the `flask` command
line, in real processes: AUTH=off is refused beyond loopback, a bad setting stops start-up naming
its variable, what the server refuses itself is problem+json, and the tokens CLI works as documented."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from services.migrate import upgrade
from tests.support.services import ROOT, Stack, free_port, port_open, wait_for

BIN = Path(sys.executable).parent


def _serve(tmp_path: Path, bind: str, **env: str) -> tuple[subprocess.Popen, Path]:
    base = Stack(f"sqlite:///{tmp_path / 'db.sqlite'}", "redis://127.0.0.1:1/0").env
    log = tmp_path / "api.log"
    proc = subprocess.Popen([sys.executable, "-m", "services.api.serve", "--bind", bind], cwd=ROOT, env={**base, **env},
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return proc, log


@pytest.mark.parametrize(("auth", "host", "bind", "starts"), [
    ("off", "127.0.0.1", "0.0.0.0", False),   # the server would listen beyond loopback: refused before it binds
    ("off", "0.0.0.0", "127.0.0.1", False),   # API_HOST says it is exposed: refused by the app factory
    ("off", "127.0.0.1", "127.0.0.1", True),  # the `make up` default
    ("on", "0.0.0.0", "0.0.0.0", True),       # compose
])
def test_auth_off_is_refused_unless_the_api_listens_on_loopback(tmp_path, auth, host, bind, starts):
    port = free_port()
    proc, log = _serve(tmp_path, f"{bind}:{port}", AUTH=auth, API_HOST=host)
    try:
        if starts:
            wait_for(lambda: port_open("127.0.0.1", port), 30, what="the API server")
            assert proc.poll() is None
        else:
            assert proc.wait(60) != 0
            assert "refusing to start: AUTH=off" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.parametrize(("variable", "value", "words"), [
    ("FLUSH_SECONDS", "fast", "FLUSH_SECONDS: Input should be a valid number"),
    ("AUTH", "maybe", "AUTH: Input should be 'on' or 'off'"),
    ("JOB_SOFT_TIME_LIMIT", "9999", "JOB_SOFT_TIME_LIMIT (9999) must not exceed JOB_HARD_TIME_LIMIT (3900)"),
])
def test_a_bad_setting_stops_start_up_naming_its_variable(tmp_path, variable, value, words):
    proc, log = _serve(tmp_path, f"127.0.0.1:{free_port()}", **{variable: value})
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


def test_what_the_server_refuses_itself_is_problem_json_and_the_access_log_keeps_no_query(tmp_path):
    import httpx

    port = free_port()
    db = tmp_path / "db.sqlite"
    upgrade(f"sqlite:///{db}")
    proc, log = _serve(tmp_path, f"127.0.0.1:{port}", DATABASE_URL=f"sqlite:///{db}", MAX_REQUEST_BYTES="100000")
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, what="the API server")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            long_line = client.get("/api/v1/jobs", params={"experiment": "x" * 5000})
            big_header = client.get("/healthz", headers={"X-Big": "y" * 9000})
            huge_headers = client.get("/healthz", headers={f"X-Big-{i}": "y" * 8000 for i in range(10)})
            big_body = client.post("/api/v1/jobs", content=b"{" + b" " * 200_000 + b"}", headers={"Content-Type": "application/json"})
            secret = client.get("/healthz", params={"token": "bpl_secret_in_the_url"})
        for answer, kind in ((long_line, "uri-too-long"), (big_header, "request-header-fields-too-large"),
                             (huge_headers, "request-header-fields-too-large"), (big_body, "request-too-large")):
            assert answer.headers["Content-Type"] == "application/problem+json", answer.text
            assert answer.json()["type"].endswith("/docs/problems#" + kind) and answer.status_code == answer.json()["status"]
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert (long_line.status_code, big_header.status_code, huge_headers.status_code, big_body.status_code) == (414, 431, 431, 413)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # a header line that is not one
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon in this header\r\n\r\n")
            unparsable = b""
            while chunk := raw.recv(4096):  # the server closes the connection after it
                unparsable += chunk
            unparsable = unparsable.decode()
        assert " 400 " in unparsable.splitlines()[0] and "application/problem+json" in unparsable and '"status": 400' in unparsable
        assert secret.status_code == 400  # an unknown query parameter; and it never reaches the log
    finally:
        proc.terminate()
        proc.wait(20)
    text = log.read_text()
    assert '"GET /healthz HTTP/1.1" 400' in text and "bpl_secret_in_the_url" not in text, text[-2000:]


def test_uploads_are_bounded_before_their_body_and_a_cut_one_stores_nothing(tmp_path):
    """Through the real server: a 10 GB Content-Length is refused from its headers (413, nothing read);
    an upload that stops half-way stores nothing; a 2 MB CSV (spooled to disk, not memory) becomes a dataset."""
    import httpx

    port = free_port()
    db = tmp_path / "db.sqlite"
    upgrade(f"sqlite:///{db}")
    proc, _log = _serve(tmp_path, f"127.0.0.1:{port}", DATABASE_URL=f"sqlite:///{db}", MAX_DATASET_BYTES="3000000")
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, what="the API server")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"POST /api/v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                        b"Content-Length: 10737418240\r\n\r\n")
            answer = b""
            while chunk := raw.recv(65536):  # the server answers and closes, reading nothing of the body
                answer += chunk
            answer = answer.decode()
        assert answer.startswith("HTTP/1.1 413") and "application/problem+json" in answer and "MAX_DATASET_BYTES" in answer
        rows = "a,b,label\n" + "".join(f"{i},{i * 0.5},{'x' if i % 2 else 'y'}\n" for i in range(100_000))
        body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\r\n" + rows.encode() + b"\r\n--b--\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # half the body, then the client is gone
            raw.sendall(b"POST /api/v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/api/v1/datasets").json()["datasets"] == []
            made = client.post("/api/v1/datasets", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
            assert made.status_code == 201, made.text
            assert made.json()["rows"] == 100_000 and made.json()["upload_bytes"] == len(rows.encode())
    finally:
        proc.terminate()
        proc.wait(10)
