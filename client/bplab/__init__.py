"""Python client for Backprop Lab: `Client(url).submit(spec)`, `.wait(id)`, `.metrics(id)`, sweeps."""

from .client import Client, Metrics
from .errors import (
                     ApiError,
                     BadRequest,
                     BplabError,
                     Conflict,
                     ConnectionFailed,
                     NotFound,
                     RateLimited,
                     ServerError,
                     Unauthorized,
                     ValidationFailed,
                     error_for,
)

__all__ = ["ApiError", "BadRequest", "BplabError", "Client", "Conflict", "ConnectionFailed", "Metrics", "NotFound",
           "RateLimited", "ServerError", "Unauthorized", "ValidationFailed", "error_for"]
