"""Matching a batch's keys in one statement whose SQL is the same for every batch.

``column IN (...)`` renders one placeholder per key: each batch's statement text differs, so
SQLAlchemy renders it and psycopg parses it anew every time. On PostgreSQL, ``column =
ANY(:keys)`` takes all the keys as one array parameter: one statement text, compiled once and
prepared by the driver. SQLite has no arrays; there the keys go in chunks of ``IN``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Column, Connection, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

SQLITE_CHUNK = 500  # below SQLite's bound-parameter limit (32,766 since 3.32, 999 before)


def key_chunks(conn: Connection, keys: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``keys`` in the pieces one statement each takes: all at once on PostgreSQL."""
    size = len(keys) if conn.dialect.name == "postgresql" else SQLITE_CHUNK
    for start in range(0, len(keys), max(size, 1)):
        yield keys[start : start + size]


def among(conn: Connection, column: Column[Any], keys: Sequence[Any]) -> ColumnElement[bool]:
    """``column`` equals one of ``keys`` (one chunk of :func:`key_chunks`)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(keys), type_=ARRAY(column.type)))
    return column.in_(keys)
