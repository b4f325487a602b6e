"""The Flask application: `create_app()` builds it; nothing happens at import time.

Layout: `routes/` (one blueprint per resource), `schemas/` (the typed models of every request and
answer), `openapi` (declaring a route's contract, validation and the OpenAPI document), `json_body`
(reading a body safely), `errors` and `problems` (every error as problem+json, each kind
documented), `auth` (owners from tokens), `rate_limits`, `idempotency` (the Idempotency-Key
header), `submission` (checking a job before it is stored), `representations` (store rows into
answer models), `negotiation` (JSON, CSV or text), `request_session` (the request's database
session and transaction), `token_commands` (the `flask tokens` CLI), `hardening` (security headers, request bounds), `serve`
(the HTTP server) and `wsgi`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from services.settings import Settings, get_settings

from .auth import init_auth
from .errors import register_error_handlers
from .hardening import init_hardening
from .json_body import init_json_bodies
from .rate_limits import init_limits
from .request_session import close_db
from .routes import BLUEPRINTS
from .token_commands import tokens_cli


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The API app; `config` overrides Flask settings (tests pass `SETTINGS`)."""
    app = Flask(__name__)
    settings: Settings = (config or {}).get("SETTINGS") or get_settings()
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_request_bytes)
    app.config.update(config or {})
    app.json.sort_keys = False
    app.teardown_appcontext(close_db)
    init_hardening(app)  # bounds on the request line and headers first; security headers on every answer
    init_auth(app)  # before the limiter (it counts per authenticated owner) and before reading bodies
    init_json_bodies(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    init_limits(app)  # after the views it limits
    app.cli.add_command(tokens_cli)
    register_error_handlers(app)
    logging.basicConfig(level=logging.INFO)
    return app
