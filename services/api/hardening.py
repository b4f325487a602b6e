"""What every answer carries and every request is held to, whatever the route.

- Security headers on every answer (HTML, SVG, JSON alike): a Content-Security-Policy that runs only
  our own scripts (no inline script anywhere: /docs's start-up is a static file too) and lets no
  other site frame a page (`frame-ancestors 'none'`: a framed job page would show the owner's data
  with their token); `nosniff`, so an SVG or JSON answer is never run as something else; and no
  Referer beyond our own origin. Inline styles stay allowed: the server-drawn SVG charts carry
  style attributes, which cannot run code.
- The request line and each header are bounded as the HTTP server used to bound them (414 over
  4,094 bytes, 431 over 8,190 for one header), answered as problem+json like every other error.
"""

from __future__ import annotations

from flask import Flask, Response, request

from .errors import ApiError

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # frame-ancestors' older spelling, for browsers that predate it
}
MAX_REQUEST_LINE = 4094
MAX_HEADER_BYTES = 8190


def _bounded_request() -> None:
    line = len(request.method) + len(request.environ.get("REQUEST_URI") or request.full_path) + 10  # "GET <uri> HTTP/1.1"
    if line > MAX_REQUEST_LINE:
        raise ApiError("uri-too-long", f"the request line is {line} bytes, over {MAX_REQUEST_LINE} "
                                       "(shorten the query: fewer keys per request)")
    for name, value in request.headers.items():
        if len(name) + len(value) + 2 > MAX_HEADER_BYTES:
            raise ApiError("request-header-fields-too-large", f"the {name} header is over {MAX_HEADER_BYTES} bytes")


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_hardening(app: Flask) -> None:
    app.before_request(_bounded_request)
    app.after_request(_secure)
