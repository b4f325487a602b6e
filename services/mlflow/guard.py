"""The MLflow server's sign-in with AUTH=on (`authorization_function` in its basic-auth config): MLflow's
own basic auth, and then a refusal of what would let one owner take another's names.

Only the service creates experiments: it names each owner's `<owner>/<experiment>` and keeps their
ids in its store, so nobody else may create one (that would squat a name the service will need:
alice creating `bob/default`), rename one (alice renaming hers to `bob/renamed`; MLflow lets any
user with EDIT rename), or list every user (which tells one owner the others' names). MLflow's
permissions cannot say this: any signed-in user may create experiments and EDIT includes renaming.
A guard in its own sign-in hook sees every request, of the UI and the REST API alike, before any
handler runs; a proxy in front would need its own copy of MLflow's routes.

Registered models are named `<name>@<owner>` (MLflow allows no `/` in them; everything after the
first `@` is the owner). A user may create (or rename to) only names ending in their own `@<user>`
after a first part without `@`; MLflow makes the creator the model's manager, and its own
permissions keep everyone else from reading it or adding versions to it. So the *Register model*
button of the UI works for an owner, in their own names, and squats nobody's.

It also refuses a request sent from a page of another origin (its `Origin` header): MLflow's CORS
layer trusts every localhost port whatever `--cors-allowed-origins` says, so any page on a loopback
port could otherwise read and change an owner's runs through the browser's cached basic auth. The
origins allowed are MLflow's own setting (`--cors-allowed-origins`, MLFLOW_SERVER_CORS_ALLOWED_ORIGINS)
and the server's own address.

Runs inside the MLflow server process, so it imports only MLflow and the standard library.
"""

from __future__ import annotations

import json
import os

from flask import Response, request
from mlflow.server import auth as mlflow_auth

# Path endings (under /api/2.0/mlflow/ and /ajax-api/2.0/mlflow/, with any static prefix) only the admin may call.
ADMIN_ONLY = ("/mlflow/experiments/create", "/mlflow/experiments/update", "/mlflow/experiments/restore", "/mlflow/users/list")
# Path endings that name a registered model (the body's field): a non-admin only `<name>@<their user>`.
OWN_NAMES = {"/mlflow/registered-models/create": "name", "/mlflow/registered-models/rename": "new_name"}


def _refusal(message: str) -> Response:
    return Response(json.dumps({"error_code": "PERMISSION_DENIED", "message": message}), status=403, mimetype="application/json")


def _foreign_origin() -> str | None:
    """The request's Origin when it is neither the server's own nor one MLflow was told to allow."""
    origin = request.headers.get("Origin")
    if not origin or origin == request.host_url.rstrip("/"):
        return None
    allowed = {o.strip() for o in os.environ.get("MLFLOW_SERVER_CORS_ALLOWED_ORIGINS", "").split(",") if o.strip()}
    return None if origin in allowed else origin


def authenticate() -> object:
    """A 403 for a page of a foreign origin; MLflow's basic auth; then a 403 for a non-admin asking for one
    of ADMIN_ONLY, or naming a registered model that is not their own `<name>@<user>`."""
    if (origin := _foreign_origin()) is not None:
        return _refusal(f"requests from pages of {origin} are not accepted (MLFLOW_SERVER_CORS_ALLOWED_ORIGINS)")
    authorization = mlflow_auth.authenticate_request_basic_auth()
    if isinstance(authorization, Response):
        return authorization
    path = request.path.rstrip("/")
    if path.endswith(ADMIN_ONLY) and not _admin(authorization.username):
        return _refusal("experiments are created and named by Backprop Lab only (submit a job with an experiment to get one); "
                        "listing users is for the admin")
    field = next((f for ending, f in OWN_NAMES.items() if path.endswith(ending)), None)
    if field is not None and not _admin(authorization.username):
        first, at, owner = str((request.get_json(silent=True) or {}).get(field, "")).partition("@")
        if not (first and at and owner == authorization.username):
            return _refusal(f"registered models are named after their owner: call yours <name>@{authorization.username}")
    return authorization


def _admin(username: str) -> bool:
    return mlflow_auth.store.get_user(username).is_admin
