"""Registered models made from a job's run (`POST /jobs/{id}/register`), spoken to over MLflow's REST
API as its admin, as owners.py is (the API process does not import mlflow).

With MLflow guarded (AUTH=on) an owner's registered models are named `<name>@<owner>` (MLflow allows
no `/` in these names, so not `<owner>/<name>` as experiments are; everything after the first `@` is
the owner, so no name of one owner reads as another's): the service creates the model with a
`bplab.owner` tag and grants the owner EDIT on it; a model of that name it finds without that tag is
someone else's, and nothing is registered into it. Nobody but the admin may create or rename a
registered model outside their own `@<user>` names (guard.py), and MLflow's own permissions keep
everyone else from reading or adding to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import httpx

from ..settings import Settings
from .owners import OWNER_PERMISSION, TIMEOUT_SECONDS, guarded

OWNER_TAG = "bplab.owner"


class NameTaken(RuntimeError):
    """The registered model's name belongs to a model the owner did not get from the service."""


class MlflowUnreachable(RuntimeError):
    """MLflow did not answer (or answered 5xx): try again later."""


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    url: str


def registered_name(owner: str, name: str, settings: Settings) -> str:
    """The registered model's name in MLflow: the owner's own `<name>@<owner>` when MLflow is guarded."""
    return f"{name}@{owner}" if guarded(settings) else name


def model_version_url(settings: Settings, name: str, version: str) -> str:
    """The version's page in the MLflow UI."""
    return f"{settings.mlflow_ui_url.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{version}"


def register(settings: Settings, owner: str, name: str, run_id: str, model_id: str) -> Registered:
    """A new version of the owner's registered model `name` (created on first use) from the run's model."""
    full = registered_name(owner, name, settings)
    auth = (settings.mlflow_tracking_username, settings.mlflow_tracking_password) if settings.mlflow_tracking_username else None
    try:
        with httpx.Client(base_url=settings.mlflow_tracking_uri.rstrip("/"), auth=auth, timeout=TIMEOUT_SECONDS) as http:
            _ensure_model(http, full, owner, settings)
            answer = _ok(http.post("/api/2.0/mlflow/model-versions/create", json={
                "name": full, "source": f"models:/{model_id}", "run_id": run_id, "model_id": model_id}))
    except httpx.TransportError as exc:
        raise MlflowUnreachable(f"MLflow unreachable: {exc}") from None
    version = str(answer.json()["model_version"]["version"])
    return Registered(full, version, model_version_url(settings, full, version))


def _ensure_model(http: httpx.Client, full: str, owner: str, settings: Settings) -> None:
    created = http.post("/api/2.0/mlflow/registered-models/create", json={"name": full, "tags": [{"key": OWNER_TAG, "value": owner}]})
    if created.status_code == 200:
        if guarded(settings):
            _ok(http.post("/api/3.0/mlflow/users/permissions/grant", json={
                "username": owner, "resource_type": "registered_model", "resource_id": full, "permission": OWNER_PERMISSION}))
        return
    if "RESOURCE_ALREADY_EXISTS" not in created.text:
        _ok(created)
    if not guarded(settings):
        return
    existing = _ok(http.get("/api/2.0/mlflow/registered-models/get", params={"name": full})).json()["registered_model"]
    tags = {tag["key"]: tag["value"] for tag in existing.get("tags", [])}
    if tags.get(OWNER_TAG) != owner:
        raise NameTaken(f"the MLflow registered model {full!r} was not made by this service for {owner}, so nothing is registered "
                        "into it; an MLflow admin should rename it")


def _ok(answer: httpx.Response) -> httpx.Response:
    if answer.status_code >= 500:
        raise MlflowUnreachable(f"MLflow answered {answer.status_code}: {answer.text[:300]}")
    answer.raise_for_status()
    return answer
