"""gunicorn settings hook (`gunicorn -c python:services.api.gunicorn_conf ...`): read the settings
and check the real listening addresses before serving, so a bad variable stops start-up with its
name and AUTH=off never listens beyond loopback."""

from services.api.auth import RefusedToStart, check_binds
from services.settings import SettingsError, get_settings


def on_starting(server) -> None:
    try:
        check_binds(get_settings().auth, list(server.cfg.bind))
    except (RefusedToStart, SettingsError) as exc:
        raise SystemExit(str(exc)) from None
