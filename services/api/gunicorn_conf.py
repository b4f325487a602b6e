"""gunicorn settings hook (`gunicorn -c python:services.api.gunicorn_conf ...`): read the settings
and check the real listening addresses before serving, so a bad variable stops start-up with its
name and AUTH=off never listens beyond loopback."""

from services.api.auth import RefusedToStart, check_binds
from services.settings import SettingsError, get_settings

# Refusals gunicorn answers itself (a request line or header over its limits) as problem+json too;
# `make up` and compose pass the threaded variant, services.api.gunicorn_worker.ThreadWorker.
worker_class = "services.api.gunicorn_worker.SyncWorker"
# The access log leaves query strings out: they may carry what should not be kept (a token, say).
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)ss'


def on_starting(server) -> None:
    try:
        check_binds(get_settings().auth, list(server.cfg.bind))
    except (RefusedToStart, SettingsError) as exc:
        raise SystemExit(str(exc)) from None
