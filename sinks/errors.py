"""Turning database exceptions into leadflow's retryable and permanent store errors."""

from __future__ import annotations

from sqlalchemy import exc

from leadflow.schemas.errors import PermanentStoreError, StoreError

# SQLite reports schema problems as OperationalError; these are not fixed by retrying.
_SQLITE_SCHEMA_MESSAGES = ("no such table", "no such column", "has no column named")
_PERMANENT = (exc.ProgrammingError, exc.IntegrityError, exc.DataError, exc.NotSupportedError)
_RETRYABLE = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.InternalError,
    exc.DisconnectionError,
    exc.TimeoutError,
)


def translate(error: exc.SQLAlchemyError, action: str) -> StoreError:
    """The leadflow error for a failed ``action`` (e.g. "writing a batch"), one sentence."""
    detail = first_line(error)
    if isinstance(error, _PERMANENT) or any(m in detail for m in _SQLITE_SCHEMA_MESSAGES):
        return PermanentStoreError(
            f"{action} failed and retrying cannot fix it (is the schema migrated?): {detail}"
        )
    if isinstance(error, _RETRYABLE):
        return StoreError(
            f"{action} failed; the store is unreachable or busy: {detail} "
            "(check LEADFLOW_DATABASE_URL and that the database is running)"
        )
    return PermanentStoreError(f"{action} failed: {detail}")


def first_line(error: exc.SQLAlchemyError) -> str:
    """The database's own first line about ``error``, without its final full stop."""
    origin = getattr(error, "orig", None) or error
    lines = str(origin).strip().splitlines()
    return (lines[0] if lines else type(origin).__name__).rstrip(".")
