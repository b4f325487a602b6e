"""Pieces every resource shares: the problem body, ids and step numbers, and the base classes of
query parameters (unknown names refused) and responses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from services.store.models import MAX_INT32

Id = Annotated[int, Field(ge=1, le=MAX_INT32)]
Step = Annotated[int, Field(ge=0, le=MAX_INT32)]
# A query parameter left out (`x: int | Unset = None`): a URL cannot carry null, so the document shows only the value.
Unset = SkipJsonSchema[None]


class Query(BaseModel):
    """Query parameters: strings from the URL parsed into numbers where declared; an unknown name is a 400."""

    model_config = ConfigDict(extra="forbid")


class Body(BaseModel):
    """A request body: unknown fields refused, and no coercion ("8" is no number, 1 no boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    """A response body."""


class FieldError(Out):
    field: str = Field(description="dotted path of the offending input: `model.layers[0].units`, a query parameter, a header")
    reason: str


class Problem(Out):
    """RFC 9457 problem details. `type` links to this kind's explanation on /docs/problems; `field`
    names the (first) offending input and `errors` lists every one. Some kinds add members: `limit`,
    `known_keys`, `recorded_steps`, `status_now`, `point`."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[FieldError] | None = None
    limit: dict[str, Any] | None = Field(default=None, description="over-limit: the setting's name, value and what was requested")


class NoQuery(Query):
    """An operation without query parameters: any given is refused (400), not silently ignored."""


class Pending(Out):
    """Being computed by a training worker: ask again after `Retry-After` seconds (the same URL)."""

    status: Literal["pending"]
    job_id: int
    step: int
    detail: str
