"""`flask --app services.api tokens create|list|revoke`: manage API tokens from the command line."""

from __future__ import annotations

import secrets

import click
import httpx
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from services.mlflow.owners import MlflowOwners, guarded, make_up_server
from services.settings import Settings
from services.store import tokens
from services.store.db import session_factory

tokens_cli = AppGroup("tokens", help="Create, list and revoke API tokens.")  # its commands run in the app's context


def _sessions():
    return session_factory(current_app.config["SETTINGS"].database_url)


def _mlflow_settings() -> Settings | None:
    """The guarded MLflow server to set passwords on: the one these settings name, else the one `make up`
    runs from VAR_DIR (this shell need not have make up's variables); None when there is none."""
    settings = current_app.config["SETTINGS"]
    return settings if guarded(settings) else make_up_server(settings)


def _mlflow_password(owner: str, password: str) -> None:
    """With MLflow behind the owners, the owner signs in to it with their newest token (or, after a
    revocation, with none until they get a new one)."""
    settings = _mlflow_settings()
    if settings is None:
        click.echo("no MLflow server behind the owners was found (MLFLOW_TRACKING_URI with AUTH=on, or `AUTH=on make up`): "
                   "the token opens the API only", err=True)
        return
    try:
        with MlflowOwners(settings) as owners:
            owners.set_password(owner, password)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"MLflow ({settings.mlflow_tracking_uri}) could not set {owner!r}'s password: "
                                   f"{type(exc).__name__}; nothing was changed, try again once it answers") from None


@tokens_cli.command("create", help="Create a token NAME (owned by --owner, default NAME); prints the secret once. "
                                   "With AUTH=on it is also the owner's MLflow password.")
@click.argument("name")
@click.option("--owner", default=None, help="who owns what the token submits (several tokens may share an owner)")
def _create(name: str, owner: str | None) -> None:
    try:
        with _sessions().begin() as session:  # the token is stored only once MLflow took it as the password
            secret = tokens.create(session, name, owner)
            _mlflow_password(owner or name, secret)
    except IntegrityError:
        raise click.ClickException(f"could not create token {name!r}: a token of that name exists") from None
    click.echo(secret)


@tokens_cli.command("revoke", help="Revoke the token NAME.")
@click.argument("name")
def _revoke(name: str) -> None:
    with _sessions().begin() as session:
        owner = tokens.owner_named(session, name)
        revoked = tokens.revoke(session, name)
        if revoked:  # it may be the owner's MLflow password: that is replaced by one nobody knows
            _mlflow_password(owner, secrets.token_urlsafe(32))
    if not revoked:
        raise click.ClickException(f"no live token named {name!r}")
    click.echo(f"revoked {name}" + (" (and its owner's MLflow password: create a token to sign in again)"
                                    if _mlflow_settings() is not None else ""))


@tokens_cli.command("list", help="Tokens: name, owner, created, revoked (never the secret).")
def _list() -> None:
    with _sessions()() as session:
        for t in tokens.listing(session):
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "live"
            click.echo(f"{t.name}\t{t.owner}\tcreated {t.created_at:%Y-%m-%d %H:%M}\t{state}")
