"""The OpenAPI document, a page that renders it (Swagger UI 5, which reads OpenAPI 3.1, served from
the installed swagger-ui-py package: nothing is fetched from elsewhere), and the page that explains
each kind of problem the API answers with (problem `type` URLs point into it)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import swagger_ui
from flask import Blueprint, Response, send_from_directory, url_for

from ..openapi import document
from ..problems import PROBLEMS

bp = Blueprint("docs", __name__)
ASSETS = Path(swagger_ui.__file__).parent / "static"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backprop Lab API</title>
<link rel="icon" href="{icon}"><link rel="stylesheet" href="{css}"></head>
<body><div id="swagger-ui" data-spec="{spec}"></div>
<script src="{js}"></script>
<script src="{start}"></script>
</body></html>"""  # no inline script: the Content-Security-Policy runs files of ours only (static/docs.js starts Swagger UI)

PROBLEMS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backprop Lab API: problems</title>
<style>body{{font-family:system-ui,sans-serif;max-width:50em;margin:2em auto;line-height:1.5}}
dt{{font-weight:600;margin-top:1em}}code{{background:#f3f3f3;padding:0 .2em}}</style></head>
<body><h1>Problems the API answers with</h1>
<p>Every error is an RFC 9457 <code>application/problem+json</code> body; its <code>type</code> links to one entry below.
<code>field</code> names the offending input and <code>errors</code> lists every one. The operations are in the
<a href="{docs}">API reference</a>.</p>
<dl>{entries}</dl></body></html>"""


@bp.get("/api/v1/openapi.json")
def openapi_json():
    return document()


@bp.get("/docs")
def docs_page():
    html_page = PAGE.format(css=url_for("docs.asset", name="swagger-ui.css"), js=url_for("docs.asset", name="swagger-ui-bundle.js"),
                            icon=url_for("docs.asset", name="favicon-32x32.png"), spec=url_for("docs.openapi_json"),
                            start=url_for("static", filename="docs.js"))
    return Response(html_page, mimetype="text/html")


def _text(markdown: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(markdown, quote=False))


@bp.get("/docs/problems")
def problems():
    entries = "".join(f'<dt id="{kind}">{p.status} {html.escape(p.title)} <code>{kind}</code></dt><dd>{_text(p.explanation)}</dd>'
                      for kind, p in PROBLEMS.items())
    return Response(PROBLEMS_PAGE.format(entries=entries, docs=url_for("docs.docs_page")), mimetype="text/html")


@bp.get("/docs/assets/<path:name>")
def asset(name: str):
    return send_from_directory(ASSETS, name, max_age=3600)
