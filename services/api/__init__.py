"""The Flask application: `create_app()` builds it; nothing happens at import time.

Layout: `routes/` (one blueprint per resource), `errors` (every error as problem+json), `auth`
(owners from tokens), `rate_limits`, `idempotency` (the Idempotency-Key header), `submission`
(checking a job before it is stored), `representations` (jobs and sweeps as JSON), `openapi`,
`request_session` (the request's database session and transaction), `token_commands` (the
`flask tokens` CLI), `gunicorn_conf` and `wsgi` (serving).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from services.settings import Settings, get_settings
from services.store.models import MAX_INT32

from .auth import init_auth
from .errors import register_error_handlers
from .rate_limits import init_limits
from .request_session import close_db
from .routes import BLUEPRINTS
from .token_commands import tokens_cli


class IdConverter(IntegerConverter):
    """Resource ids in paths: 1 .. 2**31 - 1; anything else is no id of ours (404, not an overflow)."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_INT32)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The API app; `config` overrides Flask settings (tests pass `SETTINGS`)."""
    app = Flask(__name__)
    app.url_map.converters["id"] = IdConverter
    settings: Settings = (config or {}).get("SETTINGS") or get_settings()
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_request_bytes)
    app.config.update(config or {})
    app.json.sort_keys = False
    app.teardown_appcontext(close_db)
    init_auth(app)  # before the limiter: it counts per authenticated owner
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    init_limits(app)  # after the views it limits
    app.cli.add_command(tokens_cli)
    register_error_handlers(app)
    logging.basicConfig(level=logging.INFO)
    return app
