"""Who is asking: `Authorization: Bearer <token>` names an owner; each request sees only its owner's
jobs and sweeps. With AUTH=off everything belongs to "local", which is allowed only on loopback."""

from __future__ import annotations

import ipaddress

from flask import Flask, current_app, g, request

from services.store import tokens
from services.store.models import LOCAL_OWNER

from .errors import ApiError
from .request_session import db

PUBLIC_PATHS = ("/healthz", "/readyz", "/docs", "/api/v1/openapi.json")
# The pages' shells and script (routes/pages.py): what they show comes from the API, which asks for the token.
PAGE_PATHS = ("/jobs/", "/sweeps", "/compare", "/datasets", "/static/")


def owner() -> str:
    """The owner of the current request (authenticated before any view runs)."""
    if "owner" not in g:
        g.owner = _authenticate()
    return g.owner


def signed_in() -> bool:
    """Whether the request carries a live token (for public paths that tell a signed-in caller more)."""
    try:
        owner()
    except ApiError:
        return False
    return True


def _authenticate() -> str:
    if current_app.config["SETTINGS"].auth == "off":
        return LOCAL_OWNER
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="bplab"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("unauthorized", "send `Authorization: Bearer <token>` (tokens: `flask --app services.api tokens create NAME`)",
                       headers=challenge)
    found = tokens.owner_of(db(), token.strip())
    if found is None:
        raise ApiError("unauthorized", "unknown or revoked token", headers=challenge)
    return found


def _require_owner() -> None:
    if request.path.startswith(PUBLIC_PATHS) or request.path == "/" or request.path.startswith(PAGE_PATHS):
        return
    owner()


def is_loopback(host: str) -> bool:
    """Whether a listening address only takes connections from this machine."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(bind: str) -> str:
    """The host of a gunicorn bind: "127.0.0.1:8000", "[::1]:8000", "localhost", "::1"."""
    if bind.startswith("["):
        return bind[1:bind.index("]")]
    try:
        ipaddress.ip_address(bind)
        return bind
    except ValueError:
        return bind.rsplit(":", 1)[0]


class RefusedToStart(RuntimeError):
    """AUTH=off on an address others can reach."""


def check_binds(auth: str, binds: list[str]) -> None:
    """Refuse to serve without authentication on anything but loopback (or a unix socket)."""
    if auth != "off":
        return
    exposed = [b for b in binds if not b.startswith(("unix:", "fd://")) and not is_loopback(_host(b))]
    if exposed:
        raise RefusedToStart(f"refusing to start: AUTH=off while listening on {', '.join(exposed)}; "
                             "set AUTH=on (and create tokens) or listen on 127.0.0.1 only")


def init_auth(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    check_binds(settings.auth, [settings.api_host])
    app.before_request(_require_owner)
