"""`flask --app services.api tokens create|list|revoke`: manage API tokens from the command line."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from services.store import tokens
from services.store.db import session_factory

tokens_cli = AppGroup("tokens", help="Create, list and revoke API tokens.")  # its commands run in the app's context


def _sessions():
    return session_factory(current_app.config["SETTINGS"].database_url)


@tokens_cli.command("create", help="Create a token NAME (owned by --owner, default NAME); prints the secret once.")
@click.argument("name")
@click.option("--owner", default=None, help="who owns what the token submits (several tokens may share an owner)")
def _create(name: str, owner: str | None) -> None:
    try:
        with _sessions().begin() as session:
            secret = tokens.create(session, name, owner)
    except IntegrityError:
        raise click.ClickException(f"could not create token {name!r}: a token of that name exists") from None
    click.echo(secret)


@tokens_cli.command("revoke", help="Revoke the token NAME.")
@click.argument("name")
def _revoke(name: str) -> None:
    with _sessions().begin() as session:
        revoked = tokens.revoke(session, name)
    if not revoked:
        raise click.ClickException(f"no live token named {name!r}")
    click.echo(f"revoked {name}")


@tokens_cli.command("list", help="Tokens: name, owner, created, revoked (never the secret).")
def _list() -> None:
    with _sessions()() as session:
        for t in tokens.listing(session):
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "live"
            click.echo(f"{t.name}\t{t.owner}\tcreated {t.created_at:%Y-%m-%d %H:%M}\t{state}")
