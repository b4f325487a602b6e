"""The OpenAPI document and a browsable page (Swagger UI, served from the installed package)."""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

from ..openapi import openapi_document

bp = Blueprint("docs", __name__)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Backprop Lab API</title>
<link rel="stylesheet" href="{css}"></head>
<body><div id="swagger-ui"></div>
<script src="{js}"></script>
<script>SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui"}});</script>
</body></html>"""


@bp.get("/api/v1/openapi.json")
def openapi_json():
    return openapi_document()


@bp.get("/docs")
def docs_page():
    html = PAGE.format(css=url_for("docs.asset", name="swagger-ui.css"), js=url_for("docs.asset", name="swagger-ui-bundle.js"),
                       spec=url_for("docs.openapi_json"))
    return Response(html, mimetype="text/html")


@bp.get("/docs/assets/<path:name>")
def asset(name: str):
    return send_from_directory(swagger_ui_path, name)
