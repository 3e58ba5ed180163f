"""PostgreSQL: a batch's rows in through COPY, the sink's bulk path.

COPY sends every row in one stream that psycopg formats in C, where ``executemany`` dumps and
sends each row as a statement of its own. Rows that only insert go straight into their table;
rows that upsert go into a temporary staging table of the same columns (one per table and
session, emptied by the statement that moves them on), then into the table with one
``INSERT ... SELECT ... ON CONFLICT``, which decides each row exactly as the same upsert row by
row decides it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

STAGING_PREFIX = "leadflow_batch_"


def copy_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    values: Sequence[tuple[Any, ...]],
    conflict: str,
) -> None:
    """Insert ``values`` (tuples in ``columns`` order) into ``table`` in the connection's
    transaction; ``conflict``: the ``ON CONFLICT ...`` clause, or "" for a plain insert.

    Each row of one call must have a key of its own when ``conflict`` updates (as one
    ``INSERT ... ON CONFLICT DO UPDATE`` requires). Driver errors are raised as SQLAlchemy's,
    so that the sink tells retryable from permanent ones as for any other statement.
    """
    names = ", ".join(columns)
    target = f"{STAGING_PREFIX}{table}" if conflict else table
    statement = f"COPY {target} ({names}) FROM STDIN"
    try:
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            if conflict:
                cursor.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {target} (LIKE {table}) "
                    "ON COMMIT DELETE ROWS"
                )
            with cursor.copy(statement) as copy:
                for row in values:
                    copy.write_row(row)
            if conflict:
                statement = (
                    f"WITH batch AS (DELETE FROM {target} RETURNING {names}) "
                    f"INSERT INTO {table} ({names}) SELECT {names} FROM batch {conflict}"
                )
                cursor.execute(statement)
    except psycopg.Error as error:
        raise DBAPIError.instance(
            statement, None, error, psycopg.Error, dialect=conn.dialect
        ) from error
