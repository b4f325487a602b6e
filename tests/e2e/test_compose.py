"""docker-compose.yml is a valid Compose file (checked wherever a compose CLI exists)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]


def compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_validates():
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose CLI on this machine")
    done = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "MLFLOW_ADMIN_PASSWORD": "from-the-operator", "MLFLOW_SECRET_KEY": "also"})
    assert done.returncode == 0, done.stderr


def test_compose_has_the_services_with_health_checks():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "worker", "mlflow-worker", "redis", "postgres", "mlflow"} <= set(services)
    for name in ("api", "worker", "mlflow-worker", "redis", "postgres", "mlflow"):
        assert "healthcheck" in services[name], name
    for scalable in ("worker", "mlflow-worker"):  # docker compose up --scale worker=4 --scale mlflow-worker=2
        assert "ports" not in services[scalable]
    assert "--concurrency" not in services["worker"]["command"]  # one training process per core
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_runs_with_auth_on_and_one_maintenance_worker():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env, services = compose["x-app-env"], compose["services"]
    assert env["AUTH"] == "on" and env["API_HOST"] == "0.0.0.0"  # AUTH=off would be refused on 0.0.0.0
    maintenance = services["maintenance"]["command"]
    assert maintenance[:4] == ["celery", "-A", "worker.maintenance", "worker"] and "-B" in maintenance
    assert "beat" not in services  # beat runs inside the one maintenance worker


def test_compose_runs_mlflow_behind_the_owners():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mlflow = compose["services"]["mlflow"]
    assert "basic-auth" in mlflow["command"] and mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow-auth.ini"
    config = (ROOT / "compose" / "mlflow-auth.ini").read_text()
    assert "default_permission = NO_PERMISSIONS" in config and "admin_password" not in config.replace("MLFLOW_AUTH_ADMIN_PASSWORD", "")
