"""The API's HTTP server: `python -m services.api.serve --bind HOST:PORT` (what `make up`, compose and
the tests run).

waitress, chosen because it buffers every request before a thread sees it: its one I/O loop reads
headers and bodies (bodies past 512 KB spill to a temporary file, never wholly in memory) and
writes answers, so a client that sends or reads slowly costs a socket, not one of the threads that
run the app, and a slow body holds no database connection, since the app only starts once the body
is complete. gunicorn's workers (sync or threads) read the request on the thread that serves it:
80 sockets sending a header line every few seconds held them all. One process, threads for the
app; the app's own slow work (an event stream) is bounded in the app (routes/events.py).

What the server refuses itself (headers over 8 KB each or 64 KB together, a request line over
4,094 bytes, an unparsable request, a body over MAX_REQUEST_BYTES) is answered as problem+json like
the app's errors, and the access log records the path, never the query string.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from collections.abc import Callable, Iterable

from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask

from services.settings import SettingsError, get_settings

from .auth import RefusedToStart, check_binds
from .hardening import SECURITY_HEADERS
from .problems import PROBLEMS

MAX_HEADER_BYTES = 64 * 1024  # all headers together (one header over 8,190 bytes, or a request line over 4,094, the app refuses)
CONNECTION_LIMIT = 2000  # open sockets before new ones wait in the backlog (slow clients cost a socket each)
IDLE_SECONDS = 60  # a connection that sends nothing for this long is closed
UPLOAD_PATH = "/api/v1/datasets"
UPLOAD_OVERHEAD = 64 * 1024  # a dataset upload's form fields and boundaries beside the file (routes/datasets.py)
SERVER_KINDS = {400: "bad-request", 413: "request-too-large", 431: "request-header-fields-too-large"}
DETAILS = {"bad-request": "the request could not be parsed as HTTP",
           "request-too-large": "the body is larger than this server reads (MAX_REQUEST_BYTES; an upload, MAX_DATASET_BYTES)",
           "request-header-fields-too-large": "a request header, or all of them together, is larger than this server reads"}

access_log = logging.getLogger("bplab.access")


def problem_body(kind: str, detail: str) -> bytes:
    """The problem of `kind` as problem+json bytes (for answers the server gives without the app)."""
    known = PROBLEMS[kind]
    where = f"{get_settings().public_url.rstrip('/')}/docs/problems#{kind}"
    return json.dumps({"type": where, "title": known.title, "status": known.status, "detail": detail}).encode()


class _ProblemErrorTask(ErrorTask):
    """waitress's own refusals (400, 413, 431) as problem+json, logged like any other answer."""

    def execute(self) -> None:
        error = self.request.error
        kind = SERVER_KINDS.get(error.code, "bad-request")
        self.status = f"{PROBLEMS[kind].status} {PROBLEMS[kind].title}"
        body = problem_body(kind, DETAILS[kind])
        self.response_headers += [("Content-Type", "application/problem+json"), *SECURITY_HEADERS.items()]
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
        access_log.info('%s "- - -" %s %d 0.000s', self.channel.addr[0] if self.channel.addr else "-", PROBLEMS[kind].status, len(body))


class _BoundedParser(HTTPRequestParser):
    """Each request's body bounded from its headers, before a byte of it is read: an upload to
    /api/v1/datasets by MAX_DATASET_BYTES (the server's own bound), anything else by MAX_REQUEST_BYTES."""

    other_bodies = 0  # set from the settings when the server is made

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.path.rstrip("/") != UPLOAD_PATH and self.other_bodies:
            self.adj = copy.copy(self.adj)
            self.adj.max_request_body_size = min(self.adj.max_request_body_size, self.other_bodies)


class _ProblemChannel(HTTPChannel):
    error_task_class = _ProblemErrorTask
    parser_class = _BoundedParser


class AccessLog:
    """WSGI middleware: one line per answer with the method, the path (never the query string: it may
    carry what should not be kept), status, bytes and seconds."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started, seen = time.monotonic(), {}

        def recording_start(status: str, headers: list, exc_info: object = None) -> Callable:
            seen["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        sent, answer = 0, self.app(environ, recording_start)
        try:
            for chunk in answer:
                sent += len(chunk)
                yield chunk
        finally:
            if hasattr(answer, "close"):  # WSGI: the server's close() must reach the app's answer (a stream gives its slot back)
                answer.close()
            access_log.info('%s "%s %s %s" %s %d %.3fs', environ.get("REMOTE_ADDR", "-"), environ.get("REQUEST_METHOD"),
                            environ.get("PATH_INFO"), environ.get("SERVER_PROTOCOL"), seen.get("status", "-"), sent,
                            time.monotonic() - started)


def _bind(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.api.serve", description="Serve the API.")
    parser.add_argument("--bind", default=None, help="HOST:PORT to listen on (default API_HOST:API_PORT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = get_settings()
        bind = args.bind or f"{settings.api_host}:{settings.api_port}"
        check_binds(settings.auth, [bind])
    except (RefusedToStart, SettingsError) as exc:
        raise SystemExit(str(exc)) from None
    try:
        from .wsgi import app  # after the checks: a bad setting stops start-up before the app is built
    except RefusedToStart as exc:  # API_HOST says it is exposed
        raise SystemExit(str(exc)) from None

    from services.sweeps import study  # Optuna's storage built now (a third of a second), not by the first sweep's request

    study.warm(settings.database_url)
    host, port = _bind(bind)
    largest_body = max(settings.max_request_bytes, settings.max_dataset_bytes + UPLOAD_OVERHEAD)
    _BoundedParser.other_bodies = settings.max_request_bytes + 1  # waitress refuses a body of its bound or more
    server = create_server(AccessLog(app), host=host, port=port, threads=settings.api_threads, connection_limit=CONNECTION_LIMIT,
                           channel_timeout=IDLE_SECONDS, max_request_header_size=MAX_HEADER_BYTES,
                           max_request_body_size=largest_body, asyncore_use_poll=True, ident="bplab",
                           clear_untrusted_proxy_headers=True)
    server.channel_class = _ProblemChannel
    access_log.info("serving the API on http://%s:%s (%d threads)", host, port, settings.api_threads)
    server.run()


if __name__ == "__main__":
    main()
