"""Recomputing funnel_daily and revenue_daily for the keys a batch touched, by GROUP BY."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from sinks.models import FunnelDaily, LeadLifecycle, LeadStageTransition, RevenueDaily

UNKNOWN = "unknown"
# Literals, not bound parameters: PostgreSQL must see GROUP BY expressions equal to the SELECT's.
_UNKNOWN_SQL: ColumnElement[str] = literal_column("'unknown'")
_UTC_SQL: ColumnElement[str] = literal_column("'UTC'")

FunnelKey = tuple[date, str, str, str]  # day, source, campaign_id, stage
RevenueKey = tuple[date, str, str, str]  # day, source, campaign_id, currency

_t = LeadStageTransition.__table__
_l = LeadLifecycle.__table__
_funnel: Table = FunnelDaily.__table__  # type: ignore[assignment]
_revenue: Table = RevenueDaily.__table__  # type: ignore[assignment]


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
) -> set[FunnelKey]:
    """The funnel keys of one lead's (entered_at, stage) pairs under its source and campaign."""
    src, camp = _label(source), _label(campaign_id)
    return {(at.astimezone(UTC).date(), src, camp, stage) for at, stage in transitions}


def revenue_key(row: dict[str, Any]) -> RevenueKey | None:
    """The revenue key of a lifecycle row, or None when the lead is not won."""
    if row["stage"] != "won" or row["won_at"] is None:
        return None
    won_day = row["won_at"].astimezone(UTC).date()
    return won_day, _label(row["source"]), _label(row["campaign_id"]), _label(row["currency"])


Key = tuple[date, str, str, str]


def _chunks(keys: set[Key]) -> Iterable[Sequence[Key]]:
    """The keys in runs of consecutive days, so each GROUP BY scans only touched days."""
    run: list[Key] = []
    for key in sorted(keys):
        if run and (key[0] - run[-1][0]).days > 1:
            yield run
            run = []
        run.append(key)
    if run:
        yield run


def _day_range(chunk: Sequence[Key]) -> tuple[datetime, datetime]:
    low = datetime.combine(chunk[0][0], time(), UTC)
    return low, datetime.combine(chunk[-1][0], time(), UTC) + timedelta(days=1)


def recompute_funnel(conn: Connection, keys: set[FunnelKey]) -> None:
    """Restate funnel_daily for ``keys`` from lead_stage_transitions joined to lead_lifecycle."""
    day = utc_day(_t.c.entered_at, conn.dialect.name)
    src = func.coalesce(_l.c.source, _UNKNOWN_SQL)
    camp = func.coalesce(_l.c.campaign_id, _UNKNOWN_SQL)
    for chunk in _chunks(keys):
        low, high = _day_range(chunk)
        counts = (
            select(day, src, camp, _t.c.stage, func.count())
            .select_from(_t.join(_l, _l.c.lead_id == _t.c.lead_id))
            .where(_t.c.stage.in_(sorted({key[3] for key in chunk})))
            .where(_t.c.entered_at >= low, _t.c.entered_at < high)
            .group_by(day, src, camp, _t.c.stage)
        )
        found = {tuple(row[:4]): {"leads": row[4]} for row in conn.execute(counts)}
        _restate(conn, _funnel, ("day", "source", "campaign_id", "stage"), chunk, found)


def recompute_revenue(conn: Connection, keys: set[RevenueKey]) -> None:
    """Restate revenue_daily for ``keys`` from the won rows of lead_lifecycle."""
    day = utc_day(_l.c.won_at, conn.dialect.name)
    src = func.coalesce(_l.c.source, _UNKNOWN_SQL)
    camp = func.coalesce(_l.c.campaign_id, _UNKNOWN_SQL)
    cur = func.coalesce(_l.c.currency, _UNKNOWN_SQL)
    for chunk in _chunks(keys):
        low, high = _day_range(chunk)
        sums = (
            select(day, src, camp, cur, func.count(), func.coalesce(func.sum(_l.c.amount), 0))
            .where(_l.c.stage == "won", _l.c.won_at >= low, _l.c.won_at < high)
            .group_by(day, src, camp, cur)
        )
        found = {
            tuple(row[:4]): {"won_deals": row[4], "won_amount": row[5]}
            for row in conn.execute(sums)
        }
        key_names = ("day", "source", "campaign_id", "currency")
        _restate(conn, _revenue, key_names, chunk, found)


def _restate(
    conn: Connection,
    table: Table,
    key_names: tuple[str, ...],
    chunk: Sequence[Key],
    found: dict[tuple[Any, ...], dict[str, Any]],
) -> None:
    """Upsert the recomputed rows of ``chunk`` and delete its keys that no longer count anything.

    The GROUP BY ran over whole days (filtering by key tuple in SQL is slow on PostgreSQL);
    only the keys of ``chunk`` are written.
    """
    rows = [
        {**dict(zip(key_names, key, strict=True)), **found[key]} for key in chunk if key in found
    ]
    gone = [
        {f"k_{name}": value for name, value in zip(key_names, key, strict=True)}
        for key in chunk
        if key not in found
    ]
    if rows:
        stmt = upsert(conn, table)
        values = {name: stmt.excluded[name] for name in rows[0] if name not in key_names}
        conn.execute(stmt.on_conflict_do_update(index_elements=list(key_names), set_=values), rows)
    if gone:
        match = and_(*(table.c[name] == bindparam(f"k_{name}") for name in key_names))
        conn.execute(delete(table).where(match), gone)
