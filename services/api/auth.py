"""Who is asking: `Authorization: Bearer <token>` names an owner; each request sees only its owner's
jobs and sweeps. With AUTH=off everything belongs to "local", which is allowed only on loopback.

Also the `flask --app services.api tokens ...` commands that manage tokens.
"""

from __future__ import annotations

import ipaddress

import click
from flask import Flask, current_app, g, request

from services import tokens
from services.db import session_factory
from services.models import LOCAL_OWNER

from .errors import ApiError
from .store import db

PUBLIC_PATHS = ("/healthz", "/docs", "/api/v1/openapi.json")


def owner() -> str:
    """The owner of the current request (authenticated before any view runs)."""
    if "owner" not in g:
        g.owner = _authenticate()
    return g.owner


def _authenticate() -> str:
    if current_app.config["SETTINGS"].auth == "off":
        return LOCAL_OWNER
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="bplab"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Unauthorized", "send `Authorization: Bearer <token>` (tokens: `flask --app services.api tokens create NAME`)",
                       kind="unauthorized", headers=challenge)
    found = tokens.owner_of(db(), token.strip())
    if found is None:
        raise ApiError(401, "Unauthorized", "unknown or revoked token", kind="unauthorized", headers=challenge)
    return found


def _require_owner() -> None:
    if request.path.startswith(PUBLIC_PATHS):
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
    app.cli.add_command(tokens_cli)


@click.group("tokens", help="Create, list and revoke API tokens.")
def tokens_cli() -> None:
    pass


def _session():
    return session_factory(current_app.config["SETTINGS"].database_url)()


@tokens_cli.command("create", help="Create a token NAME (owned by --owner, default NAME); prints the secret once.")
@click.argument("name")
@click.option("--owner", default=None, help="who owns what the token submits (several tokens may share an owner)")
def _create(name: str, owner: str | None) -> None:
    with _session() as session:
        try:
            secret = tokens.create(session, name, owner)
        except Exception as exc:  # a duplicate name
            raise click.ClickException(f"could not create token {name!r}: {type(exc).__name__}") from None
    click.echo(secret)


@tokens_cli.command("revoke", help="Revoke the token NAME.")
@click.argument("name")
def _revoke(name: str) -> None:
    with _session() as session:
        if not tokens.revoke(session, name):
            raise click.ClickException(f"no live token named {name!r}")
    click.echo(f"revoked {name}")


@tokens_cli.command("list", help="Tokens: name, owner, created, revoked (never the secret).")
def _list() -> None:
    with _session() as session:
        for t in tokens.listing(session):
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "live"
            click.echo(f"{t.name}\t{t.owner}\tcreated {t.created_at:%Y-%m-%d %H:%M}\t{state}")
