"""gunicorn workers whose own error answers are problem+json like the app's: a request line or a
header over gunicorn's limits (414, 431) or one it cannot parse (400) never reaches Flask, and
gunicorn would answer it with an HTML page. `SyncWorker` is the default (gunicorn_conf.py);
`ThreadWorker` is what `make up` and compose run."""

from __future__ import annotations

import json
from datetime import timedelta

from gunicorn import util
from gunicorn.http.errors import (
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidRequestLine,
    InvalidRequestMethod,
    LimitRequestHeaders,
    LimitRequestLine,
    ObsoleteFolding,
)
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker
from gunicorn.workers.sync import SyncWorker as GunicornSyncWorker

from services.settings import get_settings

from .problems import PROBLEMS

UNPARSABLE = (InvalidRequestLine, InvalidRequestMethod, InvalidHTTPVersion, InvalidHeader, InvalidHeaderName, ObsoleteFolding)


def _kind_of(exc: BaseException) -> str | None:
    if isinstance(exc, LimitRequestLine):
        return "uri-too-long"
    if isinstance(exc, LimitRequestHeaders):
        return "request-header-fields-too-large"
    if isinstance(exc, UNPARSABLE):
        return "bad-request"
    return None


def problem_bytes(kind: str, detail: str) -> bytes:
    """A complete HTTP/1.1 answer: the problem of `kind` as problem+json, the connection closed after it."""
    known = PROBLEMS[kind]
    where = f"{get_settings().public_url.rstrip('/')}/docs/problems#{kind}"
    body = json.dumps({"type": where, "title": known.title, "status": known.status, "detail": detail}).encode()
    head = (f"HTTP/1.1 {known.status} {known.title}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class _ProblemAnswers:
    """Replaces gunicorn's HTML error page for requests it refused itself; anything else is gunicorn's."""

    def handle_error(self, req, client, addr, exc):
        kind = _kind_of(exc)
        if kind is None:
            return super().handle_error(req, client, addr, exc)
        addr = addr or ("", -1)
        self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
        detail = {"uri-too-long": "the request line is longer than this server reads (shorten the query: fewer keys per request)",
                  "request-header-fields-too-large": "a request header, or all of them together, is larger than this server reads",
                  "bad-request": f"the request could not be parsed as HTTP: {type(exc).__name__}"}[kind]
        answer = problem_bytes(kind, detail)
        if req is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
            resp = Response(req, client, self.cfg)
            resp.status = f"{PROBLEMS[kind].status} {PROBLEMS[kind].title}"
            resp.response_length = len(answer)
            self.log.access(resp, req, environ, timedelta(0))
        try:
            util.write_nonblock(client, answer)
        except OSError:
            self.log.debug("Failed to send error message.")
        return None


class SyncWorker(_ProblemAnswers, GunicornSyncWorker):
    pass


class ThreadWorker(_ProblemAnswers, GunicornThreadWorker):
    pass
