"""What an exception may tell a client (a job's `error`, its `mlflow.error`): its kind and a short
message, never SQL, parameters or a traceback; those stay in the process's log."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

MAX_MESSAGE = 300


def describe(exc: BaseException) -> str:
    """`Kind: first line of the message` (shortened); a database error only as its kind."""
    if isinstance(exc, SQLAlchemyError):
        cause = getattr(exc, "orig", None)
        return f"database error ({type(cause or exc).__name__}); the details are in the service's log"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " …"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
