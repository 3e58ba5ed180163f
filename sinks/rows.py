"""Writing many rows through the driver directly: the sink's hot path, without per-value ORM work.

SQLAlchemy's type processing costs more than the database itself on batches of thousands of
rows (and holds the GIL the event loop needs); these statements pass driver-ready values to
one ``executemany`` (on PostgreSQL, from ``COPY_MIN_ROWS`` rows, to COPY: ``sinks/bulk.py``),
stored exactly as the models' types store them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import Boolean, Column, Connection, Float, Integer, String, Table

from leadflow.sinks.bulk import copy_rows
from leadflow.sinks.types import ExactNumeric, to_units

Convert = Callable[[Any], Any]
# Column types whose values (str, int, float or None; a bool as 1 or 0) SQLite's driver binds
# as the models' types store them.
_BOUND_AS_STORED = (String, Integer, Float, Boolean)
# PostgreSQL: from this many rows a statement's rows go in by COPY (fewer: the round trips
# of COPY and its staging cost more than the rows' own statements).
COPY_MIN_ROWS = 16


def _sqlite_value(value: Any) -> Any:
    kind = type(value)
    if kind is datetime:
        # As UTCDateTime stores it on SQLite: naive UTC text with microseconds.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if kind is date:
        return value.isoformat()  # as SQLAlchemy's Date stores it on SQLite
    if kind is Decimal:
        raise TypeError("a Decimal in a column that is not ExactNumeric")
    if kind is bool:
        return int(value)
    return value


def _same(value: Any) -> Any:
    return value


def _units(scale: int) -> Convert:
    return lambda value: to_units(value, scale)


def _sqlite_convert(column: Column[Any]) -> Convert:
    if isinstance(column.type, ExactNumeric):
        return _units(column.type.scale)
    if isinstance(column.type, _BOUND_AS_STORED):
        return _same
    return _sqlite_value


def converters(conn: Connection, columns: Sequence[Column[Any]]) -> list[Convert]:
    """One driver-value function per column: on SQLite, ExactNumeric columns take integer
    units of 10**-scale (as ExactNumeric binds them), times UTC text."""
    if conn.dialect.name != "sqlite":
        return [_same] * len(columns)
    return [_sqlite_convert(column) for column in columns]


def row_values(
    columns: Sequence[str], convert: Sequence[Convert]
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """What makes a row's driver values, ``columns`` in order (two columns or more), each
    through its ``convert``; the columns whose values are bound as they are skip the call."""
    get = itemgetter(*columns)
    changing = [(i, f) for i, f in enumerate(convert) if f is not _same]
    if not changing:
        return get

    def values(row: dict[str, Any]) -> tuple[Any, ...]:
        found = list(get(row))
        for i, f in changing:
            found[i] = f(found[i])
        return tuple(found)

    return values


def _marks(conn: Connection, count: int) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * count)


def insert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    upsert_key: Sequence[str] = (),
    only_if_newer: str | None = None,
    unchanged: Sequence[str] = (),
    ignore_key: Sequence[str] = (),
    or_equal: bool = False,
    adding: bool = False,
) -> None:
    """INSERT rows (dicts with every column of ``table``); with ``upsert_key``, replace on
    conflict (``adding``: add each other column's value to the stored one), and with
    ``only_if_newer`` only when that column grows.

    ``unchanged`` names columns the caller knows equal the stored row's: left out of the update,
    the indexes on them are not rewritten (SQLite rewrites an index whenever an UPDATE assigns
    one of its columns, even to the same value). With ``ignore_key``, a row whose key is stored
    already is left out (ON CONFLICT DO NOTHING). ``or_equal``: ``only_if_newer`` also replaces
    a row whose column is equal.
    """
    if not rows:
        return
    columns = [column.name for column in table.columns]
    conflict = _conflict_clause(
        table.name, columns, upsert_key, only_if_newer, unchanged, ignore_key, or_equal, adding
    )
    values_of = row_values(columns, converters(conn, list(table.columns)))
    values = [values_of(row) for row in rows]
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        copy_rows(conn, table.name, columns, values, conflict)
        return
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({_marks(conn, len(columns))})"
    conn.exec_driver_sql(f"{sql} {conflict}".rstrip(), values)


def _conflict_clause(
    table: str,
    columns: Sequence[str],
    upsert_key: Sequence[str],
    only_if_newer: str | None,
    unchanged: Sequence[str],
    ignore_key: Sequence[str],
    or_equal: bool,
    adding: bool,
) -> str:
    """The ``ON CONFLICT`` clause of :func:`insert_rows` ("" for a plain insert)."""
    if upsert_key:
        kept = {*upsert_key, *unchanged}
        stored = f"{table}.{{0}} + " if adding else ""
        updates = ", ".join(
            f"{c} = {stored.format(c)}excluded.{c}" for c in columns if c not in kept
        )
        clause = f"ON CONFLICT ({', '.join(upsert_key)}) DO UPDATE SET {updates}"
        if only_if_newer:
            compare = "<=" if or_equal else "<"
            clause += f" WHERE {table}.{only_if_newer} {compare} excluded.{only_if_newer}"
        return clause
    if ignore_key:
        return f"ON CONFLICT ({', '.join(ignore_key)}) DO NOTHING"
    return ""


def delete_rows(
    conn: Connection,
    table: Table,
    key: Sequence[str],
    keys: Sequence[tuple[Any, ...]],
    also: str = "",
) -> None:
    """DELETE the rows whose ``key`` columns equal each tuple of ``keys`` (and that meet the
    SQL condition ``also``, if given)."""
    if not keys:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    where = " AND ".join([*(f"{c} = {mark}" for c in key), *filter(None, [also])])
    convert = converters(conn, [table.c[c] for c in key])
    conn.exec_driver_sql(
        f"DELETE FROM {table.name} WHERE {where}",
        [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in keys],
    )
