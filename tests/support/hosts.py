"""The stack laid out as hosts on one machine: each host a Linux network namespace with its own address on a
bridge that lives in a namespace of its own (the "switch"), and its own empty working directory as its whole
writable disk. What runs on a host is configured only by the documented environment variables, as compose
configures it, and reaches the others only by address.

    db       PostgreSQL, its own cluster (initdb in its directory)
    broker   Redis
    mlflow   the MLflow server with its artifact store
    api      the HTTP API (it runs the migrations first, as compose's `migrate` does)
    w1, w2   training workers
    mirror   the MLflow worker, and the maintenance worker (beat: its schedule file is on this host's disk)

The harness process itself is the operator's machine: one more port on the switch (CLIENT_IP), from which it
calls the API and MLflow as a user would. Faults: `partition(a, b)` (a blackhole route each way: every packet
between them dropped at its sender), `heal`, `kill_host` (every process of a host at once, SIGKILL), a host's
wall clock set off with libfaketime (`clock_offset`). Needs root (`ip netns`); `available()` says why not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .services import BIN, LIBFAKETIME, ROOT, wait_for

NET = "10.77.0"
CLIENT_IP = f"{NET}.1"
MLFLOW_ADMIN_PASSWORD = "harness-admin-password"  # the throwaway MLflow server's admin, as compose's MLFLOW_ADMIN_PASSWORD
ADDRESSES = {"db": 2, "broker": 3, "mlflow": 4, "api": 5, "w1": 6, "w2": 7, "mirror": 8}
BLAS_SETTINGS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # set on some processors of this machine (what OpenBLAS runs as)
PG_BIN = Path("/usr/lib/postgresql") / (sorted(os.listdir("/usr/lib/postgresql"))[-1] if Path("/usr/lib/postgresql").exists() else "15") / "bin"


def available() -> str | None:
    """None when hosts can be made here; else why not (not root, no `ip`, no PostgreSQL server binaries)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "no `ip` (iproute2)"
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL server binaries at {PG_BIN}"
    probe = f"bpprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` refused: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=check)


@dataclass
class Host:
    name: str
    ns: str
    ip: str
    dir: Path
    clock_offset: int | None = None  # seconds its wall clock is off (libfaketime), None: the machine's
    procs: list[subprocess.Popen] = field(default_factory=list)
    ready_seen: int = 0  # "ready." lines in its worker's log before the last start


class Hosts:
    """The namespaces, the switch and every host's processes; `close()` removes all of it."""

    def __init__(self, prefix: str = "bp", clock_offsets: dict[str, int] | None = None, env: dict[str, str] | None = None) -> None:
        self.prefix = f"{prefix}{os.getpid() % 10000}"
        self.base = Path(tempfile.mkdtemp(prefix="bplab-hosts-"))
        self.base.chmod(0o755)  # the db host's PostgreSQL runs as `postgres`: it must reach its own directory
        self.switch = f"{self.prefix}-net"
        self.hosts = {name: Host(name, f"{self.prefix}-{name}", f"{NET}.{n}", self.base / name, (clock_offsets or {}).get(name))
                      for name, n in ADDRESSES.items()}
        self.extra_env = env or {}
        self.partitions: set[tuple[str, str]] = set()
        self._made: list[str] = []

    # -- the network ---------------------------------------------------------------------------------
    def make_network(self) -> None:
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        _ip("link", "add", "br0", "type", "bridge", ns=self.switch)
        _ip("link", "set", "br0", "up", ns=self.switch)
        for host in self.hosts.values():
            host.dir.mkdir(parents=True)
            _ip("netns", "add", host.ns)
            self._made.append(host.ns)
            self._plug(host.ns, f"v{host.name}", host.ip)
        self._plug(None, f"{self.prefix}c", CLIENT_IP)  # the operator's machine: this process's namespace

    def _plug(self, ns: str | None, port: str, address: str) -> None:
        """A veth from `ns` (None: this namespace) to the switch's bridge, with `address` on its host end."""
        end, near, far = "eth0" if ns else port, "h" + port[-12:], "s" + port[-12:]  # made here, then each moved to its side
        _ip("link", "add", near, "type", "veth", "peer", "name", far)
        _ip("link", "set", far, "netns", self.switch)
        _ip("link", "set", far, "name", port, ns=self.switch)
        _ip("link", "set", port, "master", "br0", ns=self.switch)
        _ip("link", "set", port, "up", ns=self.switch)
        if ns is not None:
            _ip("link", "set", near, "netns", ns)
            _ip("link", "set", near, "name", end, ns=ns)
            _ip("link", "set", "lo", "up", ns=ns)
        else:
            _ip("link", "set", near, "name", end)
        _ip("addr", "add", f"{address}/24", "dev", end, ns=ns)
        _ip("link", "set", end, "up", ns=ns)

    def partition(self, a: str, b: str) -> None:
        """Cut `a` off from `b` (both ways): a blackhole route to the other on each."""
        for x, y in ((a, b), (b, a)):
            _ip("route", "add", "blackhole", f"{self.hosts[y].ip}/32", ns=self.hosts[x].ns)
        self.partitions.add((a, b))

    def heal(self, a: str, b: str) -> None:
        for x, y in ((a, b), (b, a)):
            _ip("route", "del", "blackhole", f"{self.hosts[y].ip}/32", ns=self.hosts[x].ns, check=False)
        self.partitions.discard((a, b))

    # -- processes -----------------------------------------------------------------------------------
    def env_for(self, host: Host) -> dict[str, str]:
        """What a host's processes get: the documented variables, pointing at the other hosts by address, and
        its own directory as home and temp (nothing of this machine's but the code and the binaries)."""
        db, broker, mlflow, api = (self.hosts[n].ip for n in ("db", "broker", "mlflow", "api"))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(host.dir), "TMPDIR": str(host.dir), "LANG": "C.UTF-8",
               "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
               "DATABASE_URL": f"postgresql+psycopg://postgres@{db}:5432/bplab", "REDIS_URL": f"redis://{broker}:6379/0",
               "MLFLOW_TRACKING_URI": f"http://{mlflow}:5000", "MLFLOW_UI_URL": f"http://{mlflow}:5000",
               "PUBLIC_URL": f"http://{api}:8000", "AUTH": "on", "MLFLOW_TRACKING_USERNAME": "admin",
               "MLFLOW_TRACKING_PASSWORD": MLFLOW_ADMIN_PASSWORD, **self.extra_env}
        # The processor's BLAS settings, as hosts of one kind of machine share them: OpenBLAS picks its kernels by them,
        # and another kernel rounds a product otherwise (the jobs are checked bitwise against a run in this process).
        env.update({name: os.environ[name] for name in BLAS_SETTINGS if name in os.environ})
        if host.clock_offset is not None:  # its time of day off; its monotonic clock true
            env.update(LD_PRELOAD=str(LIBFAKETIME), FAKETIME=f"{host.clock_offset:+d}", FAKETIME_DONT_FAKE_MONOTONIC="1")
        return env

    def run(self, name: str, argv: list[str], log: str, user: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `argv` on host `name` (its own process group, so a host loss kills it with its children)."""
        host = self.hosts[name]
        prefix = ["ip", "netns", "exec", host.ns] + (["runuser", "-u", user, "--"] if user else [])
        with open(host.dir / log, "a") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([*prefix, *argv], cwd=host.dir, env={**self.env_for(host), **(env or {})},
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        host.procs.append(proc)
        return proc

    def kill_host(self, name: str) -> None:
        """Every process of the host at once, as a machine loss would."""
        for proc in self.hosts[name].procs:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.hosts[name].procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.hosts[name].procs = []

    # -- the stack -----------------------------------------------------------------------------------
    def start_db(self) -> None:
        host = self.hosts["db"]
        data = host.dir / "pg"
        shutil.chown(host.dir, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}, cwd=host.dir)
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {NET}.0/24 trust\n")
        self.run("db", [str(PG_BIN / "postgres"), "-D", str(data), "-c", f"listen_addresses={host.ip}", "-c",
                        f"unix_socket_directories={host.dir}", "-c", "fsync=off", "-c", "max_connections=200"], "postgres.log",
                 user="postgres")
        wait_for(lambda: self.exec("db", [str(PG_BIN / "pg_isready"), "-h", host.ip, "-q"]).returncode == 0, 60, what="PostgreSQL")
        self.exec("db", [str(PG_BIN / "createdb"), "-h", host.ip, "-U", "postgres", "bplab"], check=True)

    def exec(self, name: str, argv: list[str], check: bool = False) -> subprocess.CompletedProcess:
        """Run a command on a host and wait for it."""
        host = self.hosts[name]
        return subprocess.run(["ip", "netns", "exec", host.ns, *argv], cwd=host.dir, env=self.env_for(host), capture_output=True,
                              text=True, check=check)

    def start(self, mirror: bool = True) -> Hosts:
        """Every host's processes, in compose's order; ready when the API answers /readyz."""
        self.make_network()
        self.start_db()
        self.run("broker", ["redis-server", "--bind", self.hosts["broker"].ip, "--port", "6379", "--save", "", "--appendonly", "no",
                            "--protected-mode", "no", "--dir", str(self.hosts["broker"].dir)], "redis.log")
        if mirror:
            self.start_mlflow()
        self.exec("api", [sys.executable, "-m", "services.migrate"], check=True)
        self.token = self.exec("api", [sys.executable, "-m", "flask", "--app", "services.api", "tokens", "create", "harness"],
                               check=True).stdout.strip().splitlines()[-1]
        self.run("api", [sys.executable, "-m", "services.api.serve", "--bind", f"{self.hosts['api'].ip}:8000"], "api.log")
        for name in ("w1", "w2"):
            self.start_worker(name)
        if mirror:
            self.run("mirror", [str(BIN / "celery"), "-A", "worker.mirror_worker", "worker", "--concurrency", "1", "--loglevel", "INFO",
                                "--hostname", "mirror@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"], "mirror.log")
        self.run("mirror", [str(BIN / "celery"), "-A", "worker.maintenance", "worker", "-B", "--concurrency", "1", "--loglevel", "INFO",
                            "--schedule", "beat-schedule", "--hostname", "maintenance@%h", "--without-gossip", "--without-mingle",
                            "--without-heartbeat"], "maintenance.log")
        wait_for(self._ready, 90, interval=0.3, what="the API on its host")
        for name in ("w1", "w2"):
            self.wait_worker(name)
        return self

    def start_mlflow(self) -> None:
        """MLflow behind the owners, as compose runs it: its basic-auth app with the service's guard."""
        from services.mlflow.owners import write_auth_config
        from services.up import MLFLOW_SERVER_ENV

        host = self.hosts["mlflow"]
        config = write_auth_config(host.dir / "auth.ini", f"sqlite:///{host.dir / 'auth.db'}", "admin", MLFLOW_ADMIN_PASSWORD)
        env = {**MLFLOW_SERVER_ENV, "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "harness-csrf-key"}
        self.run("mlflow", [str(BIN / "mlflow"), "server", "--host", host.ip, "--port", "5000", "--workers", "1", "--app-name",
                            "basic-auth", "--backend-store-uri", f"sqlite:///{host.dir / 'mlflow.db'}", "--artifacts-destination",
                            str(host.dir / "artifacts"), "--allowed-hosts", f"{host.ip}:5000", "--cors-allowed-origins",
                            f"http://{host.ip}:5000"], "mlflow.log", env=env)
        wait_for(lambda: self._answers(f"http://{host.ip}:5000/health"), 120, interval=0.5, what="MLflow on its host")

    def start_worker(self, name: str) -> subprocess.Popen:
        log = self.hosts[name].dir / "worker.log"
        self.hosts[name].ready_seen = log.read_text().count("ready.") if log.exists() else 0
        return self.run(name, [str(BIN / "celery"), "-A", "worker.app", "worker", "--concurrency", "1", "--loglevel", "INFO",
                               "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"], "worker.log")

    def wait_worker(self, name: str) -> None:
        """Until the worker last started on the host says it is ready."""
        host = self.hosts[name]
        log = host.dir / "worker.log"
        wait_for(lambda: log.exists() and log.read_text().count("ready.") > host.ready_seen, 90, interval=0.3,
                 what=f"the worker on {name}")

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _ready(self) -> bool:
        return self._answers(f"{self.api_url}/healthz")

    @property
    def api_url(self) -> str:
        return f"http://{self.hosts['api'].ip}:8000"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.hosts['mlflow'].ip}:5000"

    def client(self) -> httpx.Client:
        """The API as the harness's owner calls it (its bearer token)."""
        return httpx.Client(base_url=self.api_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0),
                            headers={"Authorization": f"Bearer {self.token}"})

    def mlflow(self) -> httpx.Client:
        """MLflow's REST API as its admin."""
        return httpx.Client(base_url=self.mlflow_url, timeout=10, auth=("admin", MLFLOW_ADMIN_PASSWORD))

    def database_url(self) -> str:
        """The store as the harness (the operator) reads it to check what was written."""
        return f"postgresql+psycopg://postgres@{self.hosts['db'].ip}:5432/bplab"

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {h.name}/{p.name}\n{p.read_text()[-tail:]}" for h in self.hosts.values() for p in sorted(h.dir.glob("*.log")))

    def close(self) -> None:
        for name in reversed(list(self.hosts)):
            self.kill_host(name)
        for ns in reversed(self._made):
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", f"{self.prefix}c", check=False)
        time.sleep(0.1)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
