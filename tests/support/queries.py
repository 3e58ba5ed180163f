"""Read helpers over the shared store, for tests and the report command."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from leadflow.schemas.vocabulary import STAGES
from leadflow.sinks.aggregates import utc_day
from leadflow.sinks.models import (
    LIFECYCLE,
    SLA,
    TABLES,
    TRANSITIONS,
)

_UNKNOWN: ColumnElement[str] = literal_column("'unknown'")

FunnelRow = tuple[date, str, str, str, int]
RevenueRow = tuple[date, str, str, str, int, Decimal]


def read_lead(engine: Engine, lead_id: str) -> dict[str, Any] | None:
    """The lead's lead_lifecycle row, or None."""
    with engine.connect() as conn:
        query = select(LIFECYCLE).where(LIFECYCLE.c.lead_id == lead_id)
        row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def read_transitions(engine: Engine, lead_id: str) -> list[dict[str, Any]]:
    """The lead's stage transitions in the order they were entered."""
    with engine.connect() as conn:
        query = select(TRANSITIONS).where(TRANSITIONS.c.lead_id == lead_id)
        rows = [dict(row) for row in conn.execute(query).mappings()]
    return sorted(rows, key=lambda r: (r["cycle_no"], r["entered_at"], STAGES.index(r["stage"])))


def read_sla(engine: Engine, lead_id: str) -> list[dict[str, Any]]:
    """The lead's handoff_sla rows by cycle."""
    with engine.connect() as conn:
        query = select(SLA).where(SLA.c.lead_id == lead_id).order_by(SLA.c.cycle_no)
        return [dict(row) for row in conn.execute(query).mappings()]


def funnel_groupby(engine: Engine) -> set[FunnelRow]:
    """What funnel_daily must hold: transitions by UTC day, current source and campaign, stage."""
    t, lc = TRANSITIONS.c, LIFECYCLE.c
    day = utc_day(t.entered_at, engine.dialect.name)
    src, camp = func.coalesce(lc.source, _UNKNOWN), func.coalesce(lc.campaign_id, _UNKNOWN)
    query = (
        select(day, src, camp, t.stage, func.count())
        .select_from(TRANSITIONS.join(LIFECYCLE, lc.lead_id == t.lead_id))
        .group_by(day, src, camp, t.stage)
    )
    with engine.connect() as conn:
        return {(r[0], r[1], r[2], r[3], r[4]) for r in conn.execute(query)}


def revenue_groupby(engine: Engine) -> set[RevenueRow]:
    """What revenue_daily must hold: won leads by UTC day of the win, source, campaign, currency."""
    lc = LIFECYCLE.c
    day = utc_day(lc.won_at, engine.dialect.name)
    src, camp = func.coalesce(lc.source, _UNKNOWN), func.coalesce(lc.campaign_id, _UNKNOWN)
    cur = func.coalesce(lc.currency, _UNKNOWN)
    query = (
        select(day, src, camp, cur, func.count(), func.sum(lc.amount))
        .where(lc.stage == "won")
        .group_by(day, src, camp, cur)
    )
    with engine.connect() as conn:
        return {(r[0], r[1], r[2], r[3], r[4], _money(r[5])) for r in conn.execute(query)}


def funnel_rows(engine: Engine) -> set[FunnelRow]:
    """funnel_daily as a set of (day, source, campaign_id, stage, leads)."""
    return {
        (r["day"], r["source"], r["campaign_id"], r["stage"], r["leads"])
        for r in table_rows(engine, "funnel_daily")
    }


def revenue_rows(engine: Engine) -> set[RevenueRow]:
    """revenue_daily as a set of (day, source, campaign_id, currency, won_deals, won_amount)."""
    return {
        (
            r["day"],
            r["source"],
            r["campaign_id"],
            r["currency"],
            r["won_deals"],
            _money(r["won_amount"]),
        )
        for r in table_rows(engine, "revenue_daily")
    }


def table_rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    """Every row of one store table, ordered by its primary key."""
    if table not in TABLES:
        raise ValueError(f"{table!r} is not a table of the store (one of {sorted(TABLES)})")
    model = TABLES[table]
    with engine.connect() as conn:
        query = select(model).order_by(*model.primary_key.columns)
        return [dict(row) for row in conn.execute(query).mappings()]


def _money(value: Any) -> Decimal:
    return Decimal(0 if value is None else value).quantize(Decimal("0.01"))
