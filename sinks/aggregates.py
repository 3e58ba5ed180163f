"""Keeping funnel_daily and revenue_daily equal to their GROUP BY, batch by batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Date, Table, cast, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from leadflow.schemas.vocabulary import UNKNOWN
from leadflow.sinks.models import (
    FUNNEL,
    REVENUE,
)
from leadflow.sinks.rows import delete_rows, insert_rows

# A literal, not a bound parameter: PostgreSQL must see GROUP BY expressions equal to the SELECT's.
_UTC_SQL: ColumnElement[str] = literal_column("'UTC'")

FunnelKey = tuple[date, str, str, str]  # day, source, campaign_id, stage
RevenueKey = tuple[date, str, str, str]  # day, source, campaign_id, currency
Key = tuple[date, str, str, str]


def upsert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT that supports ON CONFLICT."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def utc_day(column: Any, dialect: str) -> ColumnElement[date]:
    """The UTC calendar day of a stored time, whatever the session time zone."""
    if dialect == "postgresql":
        return cast(func.timezone(_UTC_SQL, column), Date)
    return func.date(column, type_=Date)


def _label(value: str | None) -> str:
    return UNKNOWN if value is None else value


def funnel_keys(
    transitions: Iterable[tuple[datetime, str]], source: str | None, campaign_id: str | None
) -> Counter[FunnelKey]:
    """How many of one lead's (entered_at, stage) pairs count in each funnel key."""
    src, camp = _label(source), _label(campaign_id)
    return Counter((at.astimezone(UTC).date(), src, camp, stage) for at, stage in transitions)


def revenue_key(row: dict[str, Any]) -> RevenueKey | None:
    """The revenue key a lifecycle row counts in, or None when the lead is not won."""
    if row["stage"] != "won" or row["won_at"] is None:
        return None
    won_day = row["won_at"].astimezone(UTC).date()
    return won_day, _label(row["source"]), _label(row["campaign_id"]), _label(row["currency"])


def apply_funnel_delta(conn: Connection, delta: Counter[FunnelKey]) -> None:
    """Add each key's change of transition count to funnel_daily; drop rows that reach 0.

    Exact by induction: the old rows a batch replaces are read in the same transaction, under
    the writers' lock, so funnel_daily equals the GROUP BY before and after every batch.
    """
    _apply(
        conn,
        FUNNEL,
        ("day", "source", "campaign_id", "stage"),
        {key: {"leads": n} for key, n in delta.items() if n},
        "leads",
    )


def apply_revenue_delta(conn: Connection, delta: dict[RevenueKey, tuple[int, Decimal]]) -> None:
    """Add each key's change of won deals and amount to revenue_daily; drop emptied rows."""
    changes = {
        key: {"won_deals": deals, "won_amount": amount}
        for key, (deals, amount) in delta.items()
        if deals or amount
    }
    _apply(conn, REVENUE, ("day", "source", "campaign_id", "currency"), changes, "won_deals")


def _apply(
    conn: Connection,
    table: Table,
    key_names: tuple[str, ...],
    changes: dict[Key, dict[str, Any]],
    count_column: str,
) -> None:
    if not changes:
        return
    rows = [
        {**dict(zip(key_names, key, strict=True)), **values}
        for key, values in sorted(changes.items())
    ]
    insert_rows(conn, table, rows, upsert_key=key_names, adding=True)
    emptied = f"{count_column} = 0"
    if conn.dialect.name == "postgresql":
        # Only this batch's keys can have reached 0 (the writers' lock is held): the rows of
        # its days hold them all, in one statement.
        days = sorted({key[0] for key in changes})
        conn.exec_driver_sql(f"DELETE FROM {table.name} WHERE {emptied} AND day = ANY(%s)", (days,))
    else:
        delete_rows(conn, table, key_names, sorted(changes), also=emptied)
