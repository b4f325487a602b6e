"""The API's contract, declared once on each route and enforced by spectree.

`@operation(...)` on a view names its query, header and body models and its answers; spectree
validates the request against them before the view runs (a bad query parameter or header is a 400,
a bad body a 422, both problem+json naming each field), serializes the answer from its model, and
builds the OpenAPI 3.1 document (`document()`) from the same declarations.

Why spectree: it decorates plain Flask views and blueprints (no new app class to adopt, unlike
flask-openapi3 or APIFlask), takes the engine's pydantic v2 models as they are, writes OpenAPI 3.1,
and lets a hook turn validation errors into our own problem+json.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from flask import Response as FlaskResponse
from flask import make_response
from pydantic import BaseModel, ValidationError
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecuritySchemeData
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import get_model_key

from engine.spec import errors_from_validation

from .errors import PROBLEM, ApiError
from .problems import PROBLEMS
from .schemas.common import Problem

JSON = "application/json"


class _FlaskPlugin(FlaskPlugin):
    """Spectree's Flask plugin, except that answers in another media type (CSV, plain text, an event
    stream) leave as they are: their model describes only the JSON representation."""

    def validate_response(self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool) -> Any:
        payload = resp[0] if isinstance(resp, tuple) else resp
        if isinstance(payload, FlaskResponse) and payload.mimetype != JSON:
            return make_response(resp), None
        return super().validate_response(resp, resp_model, skip_validation, force_resp_serialize)


class Answers(Response):
    """Spectree's responses, with problems as `application/problem+json`, other representations of
    a success (`media`: media type -> its description, or its schema) and response headers."""

    def __init__(self, *, media: dict[str, str | dict[str, Any]] | None = None, headers: dict[int, dict[str, str]] | None = None,
                 **code_models: Any) -> None:
        super().__init__(**code_models)
        self.media, self.headers = media or {}, headers or {}

    def generate_spec(self, naming_strategy: Callable = get_model_key) -> dict[str, Any]:
        spec = super().generate_spec(naming_strategy)
        for code, entry in spec.items():
            status = int(code)
            if status >= 400 and "content" in entry and entry["content"][JSON]["schema"]["$ref"].endswith("/Problem"):
                entry["content"] = {PROBLEM: entry["content"][JSON]}
            elif status < 300 and self.media:
                for media_type, schema in self.media.items():
                    schema = {"type": "string", "description": schema} if isinstance(schema, str) else schema
                    entry.setdefault("content", {})[media_type] = {"schema": schema}
            if status in self.headers:
                entry["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in self.headers[status].items()}
        return spec


api = SpecTree(
    backend=_FlaskPlugin, mode="strict", title="Backprop Lab API", version="1.0.0",
    description="Submit training jobs for the NumPy backprop engine, follow them, and read what they recorded: "
                "every step's loss and gradient statistics, full gradients and backward-pass traces of chosen steps, "
                "the trained model. Errors are RFC 9457 problem details; each `type` links to its explanation.",
    path="api/v1/_spectree", page_templates={}, validation_error_status=422, validation_error_model=Problem,
    naming_strategy=lambda model: model.__name__, nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(**{
        "type": "http", "scheme": "bearer",
        "description": "a token from `flask --app services.api tokens create NAME` (not needed with AUTH=off)"}))],
    security={"bearer": []},
)

class ContractBroken(RuntimeError):
    """An answer that does not match its declared model."""


# Problems most operations can answer.
AUTHENTICATED = ("unauthorized", "database-unavailable")


def _problem_from(error: ValidationError, query: type | None, headers: type | None, body_kind: str) -> ApiError:
    """Spectree's validation error as our problem: query parameters and headers 400, the body 422."""
    found = errors_from_validation(error)
    listed = [{"field": field, "reason": reason} for field, reason in found]
    detail = "; ".join(f"{field}: {reason}" if field else reason for field, reason in found)
    source = error.title
    if query is not None and source == query.__name__:
        return ApiError("bad-query", detail, field=found[0][0], errors=listed)
    if headers is not None and source == headers.__name__:
        return ApiError("bad-idempotency-key", detail, field=found[0][0], errors=listed)
    if any(field == "" for field, _ in found):
        return ApiError("bad-request", "the body must be a JSON object")
    return ApiError(body_kind, detail, field=found[0][0], errors=listed)


def operation(tag: str, *, ok: type[BaseModel] | None = None, status: int = 200, query: type[BaseModel] | None = None,
              body: type[BaseModel] | None = None, form: type[BaseModel] | None = None, headers: type[BaseModel] | None = None,
              body_kind: str = "invalid-input",
              problems: Iterable[str] = (), media: dict[str, str | dict[str, Any]] | None = None, response_headers: dict[str, str] | None = None,
              also: dict[int, tuple[type[BaseModel], str]] | None = None, public: bool = False) -> Callable:
    """Declare a view's contract: its models in, its answer `ok` with `status`, and the kinds of problem
    (`problems.PROBLEMS`) it may answer besides those its models imply."""
    # Any request may carry headers over the server's limit: every operation can answer 431.
    kinds = list(problems) + ([] if public else list(AUTHENTICATED)) + ["request-header-fields-too-large"]
    if query is not None:
        kinds += ["bad-query", "uri-too-long"]
    if headers is not None:
        kinds.append("bad-idempotency-key")
    if body is not None or form is not None:
        kinds += ["bad-request", "request-too-large", "unsupported-media-type", body_kind]
    by_status: dict[int, list[str]] = {}
    for kind in dict.fromkeys(kinds):
        by_status.setdefault(PROBLEMS[kind].status, []).append(PROBLEMS[kind].title)
    answers: dict[str, Any] = {f"HTTP_{status}": ok}
    answers |= {f"HTTP_{code}": (Problem, "; ".join(titles)) for code, titles in sorted(by_status.items())}
    answers |= {f"HTTP_{code}": answer for code, answer in (also or {}).items()}  # answers that are no problem
    extra_headers = {status: response_headers} if response_headers else {}
    view_name = ""
    if 429 in by_status:
        extra_headers[429] = {"Retry-After": "seconds until a submission is allowed again"}
    if 503 in by_status:
        extra_headers[503] = {"Retry-After": "seconds to wait before retrying"}

    def before(_request: Any, _response: Any, error: Any, _instance: Any, _adapter: Any) -> None:
        if error is not None:
            raise _problem_from(error, query, headers, body_kind)

    def after(_request: Any, _response: Any, error: Any, _instance: Any, _adapter: Any) -> None:
        if error is not None:  # our bug, not the client's: logged, and answered as a 500 problem
            raise ContractBroken(f"{view_name}: the answer does not match its model: {error}")

    def decorate(view: Callable) -> Callable:
        nonlocal view_name
        view_name = view.__name__
        return api.validate(query=query, json=body, form=form, headers=headers, resp=Answers(media=media, headers=extra_headers, **answers),
                            tags=[tag], before=before, after=after, operation_id=view.__name__, security={} if public else None,
                            validation_error_status=422 if body is not None or form is not None else 400)(view)

    return decorate


def _referenced(spec: dict[str, Any]) -> set[str]:
    """Names of the component schemas the operations use, directly or through other schemas."""
    schemas, found, todo = spec.get("components", {}).get("schemas", {}), set(), [spec["paths"]]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    todo.append(schemas.get(name))
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return found


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every declared operation (built once per process, from the app in context)."""
    spec = dict(api.spec)
    used = _referenced(spec)
    components = dict(spec["components"])
    # Query and header models are spelled out as parameters; their schemas would be unused models in a generated client.
    components["schemas"] = {name: schema for name, schema in components["schemas"].items() if name in used}
    spec["components"] = components
    _lift_examples(spec)
    return spec


def _lift_examples(spec: dict[str, Any]) -> None:
    """A request body's example (its model's first `examples`) also on the media type, where Swagger UI
    takes the body it offers to send; without one it would make one up from the schema, and a made-up
    job spec is refused (tests/api/test_contract.py submits every example the document holds)."""
    schemas = spec["components"]["schemas"]
    for operations in spec["paths"].values():
        for op in operations.values():
            for media in (op.get("requestBody") or {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                examples = schemas.get(ref.rsplit("/", 1)[-1], {}).get("examples")
                if examples:
                    media["example"] = examples[0]
