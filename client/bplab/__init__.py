"""Python client for Backprop Lab: `Client(url).submit(spec)`, `.wait(id)`, `.metrics(id)`, sweeps."""

from .client import Client, Metrics
from .errors import (ApiError, BadRequest, BplabError, Conflict, ConnectionFailed, NotFound, RateLimited, ServerError,
                     ValidationFailed)

__all__ = ["Client", "Metrics", "ApiError", "BadRequest", "BplabError", "Conflict", "ConnectionFailed", "NotFound",
           "RateLimited", "ServerError", "ValidationFailed"]
