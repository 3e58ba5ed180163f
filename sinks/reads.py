"""Reading a batch's stored rows through the driver: the values the models' types read back
(aware UTC datetimes, Decimals, booleans), without SQLAlchemy's per-row result processing."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, Connection, Table

from leadflow.sinks.keys import key_chunks
from leadflow.sinks.types import ExactNumeric, UTCDateTime, from_units

Read = Callable[[Any], Any]


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _sqlite_time(value: str | None) -> datetime | None:
    # UTCDateTime's SQLite text: naive UTC, "YYYY-MM-DD HH:MM:SS[.ffffff]".
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _sqlite_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _sqlite_units(scale: int) -> Read:
    return lambda value: from_units(value, scale)


def _reader(dialect: str, column: Column[Any]) -> Read | None:
    """What turns the driver's value of ``column`` into its type's (None: it is already)."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _aware if dialect == "postgresql" else _sqlite_time
    if dialect != "sqlite":
        return None
    if isinstance(kind, ExactNumeric):
        return _sqlite_units(kind.scale)
    if isinstance(kind, Boolean):
        return _sqlite_bool
    return None


def rows_where(
    conn: Connection, table: Table, columns: Sequence[str], key: str, keys: Sequence[Any]
) -> Iterator[tuple[Any, ...]]:
    """The ``columns`` of every row of ``table`` whose ``key`` column is one of ``keys``."""
    readers = [_reader(conn.dialect.name, table.c[name]) for name in columns]
    convert = [(i, read) for i, read in enumerate(readers) if read is not None]
    select = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {key}"
    for chunk in key_chunks(conn, keys):
        if conn.dialect.name == "postgresql":
            result = conn.exec_driver_sql(f"{select} = ANY(%s)", (list(chunk),))
        else:
            marks = ", ".join("?" * len(chunk))
            result = conn.exec_driver_sql(f"{select} IN ({marks})", tuple(chunk))
        for found in result:
            if not convert:
                yield tuple(found)
                continue
            row = list(found)
            for i, read in convert:
                row[i] = read(row[i])
            yield tuple(row)
