"""The Flask application: `create_app()` builds it; nothing happens at import time."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from services.settings import Settings, get_settings

from . import docs, health, jobs, sweeps
from .auth import init_auth
from .errors import register_error_handlers
from .limits import init_limits
from .store import close_db


MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """Resource ids in paths: 1 .. 2**31 - 1; anything else is no id of ours (404, not an overflow)."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_ID)


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
    init_limits(app)
    for blueprint in (jobs.bp, sweeps.bp, docs.bp, health.bp):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    logging.basicConfig(level=logging.INFO)
    return app
