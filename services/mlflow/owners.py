"""MLflow behind the service's owners (AUTH=on), shared by the token command and the MLflow worker.

MLflow's own basic-auth app guards its server: nothing anonymous (`default_permission =
NO_PERMISSIONS`), and a user per owner, named as the owner, whose password is the owner's newest API
token (set when the token is created, so one secret opens the REST API and the MLflow UI). The MLflow
worker signs in as MLflow's admin (MLflow's own MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD),
writes each owner's runs into experiments named `<owner>/<experiment>` (two owners never share one),
which it creates itself and finds again by the ids it keeps (worker/mlflow/experiments.py), and grants
the owner EDIT on each: they read and write their runs, nobody else sees them. Nobody but the admin
may create, rename or restore an experiment, or list users (guard.py, MLflow's sign-in hook).

Chosen over a proxy of our own in front of MLflow: its app already checks every endpoint (UI, REST,
artifacts) against per-experiment permissions, which a proxy would have to relearn for each MLflow
release. Spoken to over its REST API (httpx), so the API process does not import mlflow.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx

from ..settings import Settings

OWNER_PERMISSION = "EDIT"
TIMEOUT_SECONDS = 10.0


def guarded(settings: Settings) -> bool:
    """MLflow runs behind the owners: AUTH=on and an MLflow server to guard."""
    return settings.auth == "on" and settings.mlflow_tracking_uri.startswith(("http://", "https://"))


def experiment_name(owner: str, experiment: str, settings: Settings) -> str:
    """The MLflow experiment holding an owner's experiment: one per owner when MLflow is guarded."""
    return f"{owner}/{experiment}" if guarded(settings) else experiment


class MlflowOwners:
    """MLflow's users and permissions, managed as its admin."""

    def __init__(self, settings: Settings) -> None:
        auth = (settings.mlflow_tracking_username, settings.mlflow_tracking_password)
        self.http = httpx.Client(base_url=settings.mlflow_tracking_uri.rstrip("/"), auth=auth, timeout=TIMEOUT_SECONDS)

    def __enter__(self) -> MlflowOwners:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def exists(self, owner: str) -> bool:
        answer = self.http.get("/api/2.0/mlflow/users/get", params={"username": owner})
        if answer.status_code == 404:
            return False
        answer.raise_for_status()
        return True

    def set_password(self, owner: str, password: str) -> None:
        """The owner's user, created if needed, with `password` (the owner's newest token)."""
        if self.exists(owner):
            self.http.patch("/api/2.0/mlflow/users/update-password", json={"username": owner, "password": password}).raise_for_status()
        else:
            self.http.post("/api/2.0/mlflow/users/create", json={"username": owner, "password": password}).raise_for_status()

    def grant(self, owner: str, experiment_id: str) -> None:
        """The owner may read and write the experiment (their user is made, with a password nobody knows,
        when no token was created for them yet)."""
        if not self.exists(owner):
            self.http.post("/api/2.0/mlflow/users/create",
                           json={"username": owner, "password": secrets.token_urlsafe(32)}).raise_for_status()
        answer = self.http.post("/api/3.0/mlflow/users/permissions/grant", json={
            "username": owner, "resource_type": "experiment", "resource_id": experiment_id, "permission": OWNER_PERMISSION})
        if answer.status_code != 200 and "RESOURCE_ALREADY_EXISTS" not in answer.text:
            answer.raise_for_status()


    def holders(self, experiment_id: str) -> dict[str, str]:
        """{user: permission} of every non-admin user granted anything on the experiment (one call per
        user: used once per experiment an older version adopted, after the upgrade)."""
        answer = self.http.get("/api/2.0/mlflow/users/list")
        answer.raise_for_status()
        found = {}
        for user in answer.json().get("users", []):
            if user.get("is_admin"):
                continue
            grants = self.http.get("/api/3.0/mlflow/users/permissions/list", params={"username": user["username"]})
            grants.raise_for_status()
            for row in grants.json().get("permissions", []):
                if row.get("resource_type") == "experiment" and str(row.get("resource_pattern")) == str(experiment_id):
                    found[user["username"]] = row.get("permission")
        return found


def write_auth_config(path: Path, database_uri: str, admin: str, password: str) -> Path:
    """MLflow's basic-auth app configuration (MLFLOW_AUTH_CONFIG_PATH): nothing for anyone without a
    permission, and the admin the service signs in as (created on the app's first start)."""
    path.write_text("[mlflow]\n"
                    "default_permission = NO_PERMISSIONS\n"
                    f"database_uri = {database_uri}\n"
                    f"admin_username = {admin}\n"
                    f"admin_password = {password}\n"
                    "authorization_function = services.mlflow.guard:authenticate\n")
    path.chmod(0o600)
    return path


MAKE_UP_SERVER = "mlflow-server.json"  # in VAR_DIR: the guarded MLflow server `make up` runs, for commands run beside it


def remember_make_up_server(var: Path, tracking_uri: str | None, admin: str = "", password_file: Path | None = None) -> None:
    """Note (or, with `tracking_uri` None, forget) the guarded MLflow server `make up` runs, so the token
    command run in another shell finds it and its admin as `make up` configured them."""
    path = var / MAKE_UP_SERVER
    if tracking_uri is None:
        path.unlink(missing_ok=True)
        return
    path.write_text(json.dumps({"tracking_uri": tracking_uri, "username": admin, "password_file": str(password_file)}))
    path.chmod(0o600)


def make_up_server(settings: Settings) -> Settings | None:
    """`settings` pointed at the guarded MLflow server `make up` runs from VAR_DIR, or None if it runs none."""
    path = settings.var_dir / MAKE_UP_SERVER
    if not path.exists():
        return None
    noted = json.loads(path.read_text())
    return settings.replace(auth="on", mlflow_tracking_uri=noted["tracking_uri"], mlflow_tracking_username=noted["username"],
                            mlflow_tracking_password=Path(noted["password_file"]).read_text().strip())
