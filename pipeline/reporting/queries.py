"""Reading the report from the shared store: one consistent read of every section."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    func,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql import Select

from leadflow.pipeline.reporting.model import (
    CENTS,
    DIMENSIONS,
    SPEED_BUCKETS,
    STEP_PAIRS,
    STEPS,
    UPGRADE_HINT,
    AttributionLine,
    Details,
    Funnel,
    Report,
    ReportQuery,
    Revenue,
    SlaLine,
    SpeedToLead,
    Totals,
)
from leadflow.schemas.errors import PermanentStoreError, StoreError
from leadflow.schemas.vocabulary import (
    ATTRIBUTION_MODELS,
    SINGLE_CLOCK,
    SLA_STATUSES,
    STAGES,
    UNKNOWN,
)
from leadflow.sinks.engine import make_engine
from leadflow.sinks.errors import first_line
from leadflow.sinks.fx import RateBook, convert
from leadflow.sinks.goals import goal_progress
from leadflow.sinks.models import ATTRIBUTION, DEAD_LETTERS, LIFECYCLE, SLA, TRANSITIONS

# The tables every report reads; attribution is optional (stores before migration 0005), and
# dead_letters is left out for roles that may not read it.
REQUIRED_TABLES: tuple[Table, ...] = (LIFECYCLE, TRANSITIONS, SLA, DEAD_LETTERS)


def readable(conn: Connection, table: str) -> bool:
    """Whether the connected role may SELECT ``table`` (always on SQLite: no roles)."""
    if conn.dialect.name != "postgresql":
        return True
    query = text(
        "SELECT has_table_privilege(c.oid, 'SELECT') FROM pg_class c"
        " WHERE c.oid = to_regclass(quote_ident(current_schema()) || '.' || quote_ident(:t))"
    )
    return bool(conn.execute(query, {"t": table}).scalar())


# -- building it -------------------------------------------------------------------------------


def build_report(engine: Engine, query: ReportQuery | None = None) -> Report:
    """Read the store behind ``engine`` into a Report (one consistent read transaction)."""
    query = query or ReportQuery()
    if query.by not in DIMENSIONS:
        raise ValueError(f"unknown grouping {query.by!r}; choose one of {', '.join(DIMENSIONS)}")
    _check_sqlite_file(engine.url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                _check_tables(conn, engine.url)
                return _read_report(conn, query)
    except DBAPIError as error:
        raise _store_error(error, engine.url) from error


def _read_report(conn: Connection, query: ReportQuery) -> Report:
    overall = _funnel(_stage_counts(conn, query))
    by_source = _stage_counts_by(conn, query, "source")
    breakdown = {} if query.by == "source" else _stage_counts_by(conn, query, query.by)
    won = _won_deals(conn, query)
    return Report(
        funnel=overall,
        funnel_by_source={src: _funnel(c) for src, c in by_source.items()},
        speed_to_lead=_speed_to_lead(conn, query),
        sla=_sla_counts(conn, query),
        revenue=_revenue(won),
        totals=_totals(conn, query),
        goals=tuple(goal_progress(conn)),
        query=query,
        breakdown={key: _funnel(c) for key, c in breakdown.items()},
        details=_details(conn, query) if query.details else None,
        converted=convert(RateBook(conn), won),
        sla_by_policy=_sla_lines(conn, query, func.coalesce(SLA.c.policy, literal(SINGLE_CLOCK))),
    )


def _dimension(name: str) -> ColumnElement[str]:
    lc = LIFECYCLE.c
    col = {"source": lc.source, "campaign": lc.campaign_id, "owner": lc.owner_id}[name]
    return func.coalesce(col, literal(UNKNOWN))


def _lead_filter(query: ReportQuery) -> list[ColumnElement[bool]]:
    """Conditions on the joined lead_lifecycle row for the query's source and campaign."""
    conditions = []
    if query.source is not None:
        conditions.append(_dimension("source") == query.source)
    if query.campaign is not None:
        conditions.append(_dimension("campaign") == query.campaign)
    return conditions


def _in_period(moment: ColumnElement[datetime], query: ReportQuery) -> list[ColumnElement[bool]]:
    conditions = []
    if query.start is not None:
        conditions.append(moment >= query.start)
    if query.end is not None:
        conditions.append(moment < query.end)
    return conditions


def _transitions_query(query: ReportQuery, *columns: Any) -> Select[Any]:
    t, lc = TRANSITIONS.c, LIFECYCLE.c
    joined = TRANSITIONS.outerjoin(LIFECYCLE, lc.lead_id == t.lead_id)
    return (
        select(*columns)
        .select_from(joined)
        .where(*_lead_filter(query), *_in_period(t.entered_at, query))
    )


def _stage_counts(conn: Connection, query: ReportQuery) -> dict[str, int]:
    t = TRANSITIONS.c
    select_ = _transitions_query(query, t.stage, func.count(t.lead_id.distinct()))
    return {stage: int(n) for stage, n in conn.execute(select_.group_by(t.stage))}


def _stage_counts_by(conn: Connection, query: ReportQuery, by: str) -> dict[str, dict[str, int]]:
    t = TRANSITIONS.c
    key = _dimension(by).label("key")
    select_ = _transitions_query(query, key, t.stage, func.count(t.lead_id.distinct()))
    counts: dict[str, dict[str, int]] = {}
    for value, stage, n in conn.execute(select_.group_by(key, t.stage)):
        counts.setdefault(str(value), {})[stage] = int(n)
    return dict(sorted(counts.items()))


def _funnel(counts: Mapping[str, int]) -> Funnel:
    extra = sorted(set(counts) - set(STAGES))  # stages a newer pipeline may add
    stages = {stage: counts.get(stage, 0) for stage in (*STAGES, *extra)}
    return Funnel(stages, conversion_rates(stages))


def conversion_rates(stages: Mapping[str, int]) -> dict[str, float | None]:
    """Ratio of leads entering each success-path stage over those entering the one before."""
    rates: dict[str, float | None] = {}
    for step, (prev, nxt) in zip(STEPS, STEP_PAIRS, strict=True):
        before = stages.get(prev, 0)
        rates[step] = stages.get(nxt, 0) / before if before else None
    return rates


def percentile(sorted_values: list[float], pct: int) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``pct``% of values <= it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct * len(sorted_values) / 100))
    return sorted_values[rank - 1]


def _sla_query(query: ReportQuery, *columns: Any) -> Select[Any]:
    s, lc = SLA.c, LIFECYCLE.c
    joined = SLA.outerjoin(LIFECYCLE, lc.lead_id == s.lead_id)
    return (
        select(*columns)
        .select_from(joined)
        .where(*_lead_filter(query), *_in_period(s.mql_at, query))
    )


def _response_seconds(conn: Connection, query: ReportQuery) -> list[float]:
    s = SLA.c
    select_ = _sla_query(query, s.response_seconds).where(s.response_seconds.is_not(None))
    return sorted(float(v) for v in conn.execute(select_).scalars())


def _speed_to_lead(conn: Connection, query: ReportQuery) -> SpeedToLead:
    values = _response_seconds(conn, query)
    return SpeedToLead(len(values), percentile(values, 50), percentile(values, 90))


def _with_statuses(found: Mapping[str, int]) -> dict[str, int]:
    extra = sorted(set(found) - set(SLA_STATUSES))
    return {status: found.get(status, 0) for status in (*SLA_STATUSES, *extra)}


def _sla_counts(conn: Connection, query: ReportQuery) -> dict[str, int]:
    s = SLA.c
    select_ = _sla_query(query, s.status, func.count()).group_by(s.status)
    return _with_statuses({str(status): int(n) for status, n in conn.execute(select_)})


def _sla_lines(
    conn: Connection, query: ReportQuery, key: ColumnElement[str]
) -> tuple[SlaLine, ...]:
    """One SlaLine per value of ``key`` over the handoff_sla rows the query selects."""
    s = SLA.c
    select_ = _sla_query(query, key, s.status, s.response_seconds, s.response_business_seconds)
    statuses: dict[str, dict[str, int]] = {}
    wall: dict[str, list[float]] = {}
    business: dict[str, list[float]] = {}
    for value, status, seconds, business_seconds in conn.execute(select_):
        name = str(value)
        counts = statuses.setdefault(name, {})
        counts[str(status)] = counts.get(str(status), 0) + 1
        if seconds is not None:
            wall.setdefault(name, []).append(float(seconds))
        if business_seconds is not None:
            business.setdefault(name, []).append(float(business_seconds))
    return tuple(
        SlaLine(
            key=name,
            met=statuses[name].get("met", 0),
            breached=statuses[name].get("breached", 0),
            pending=statuses[name].get("pending", 0),
            business=_speed(business.get(name, [])),
            wall=_speed(wall.get(name, [])),
        )
        for name in sorted(statuses)
    )


def _speed(values: list[float]) -> SpeedToLead:
    ordered = sorted(values)
    return SpeedToLead(len(ordered), percentile(ordered, 50), percentile(ordered, 90))


def _won_leads(query: ReportQuery, *columns: Any) -> Select[Any]:
    lc = LIFECYCLE.c
    return select(*columns).where(
        lc.stage == "won", *_lead_filter(query), *_in_period(lc.won_at, query)
    )


def _won_deals(conn: Connection, query: ReportQuery) -> list[tuple[str, Decimal, date]]:
    """(currency, amount, UTC day won) of every won lead the query selects."""
    lc = LIFECYCLE.c
    select_ = _won_leads(query, lc.currency, lc.amount, lc.won_at)
    return [
        (currency or UNKNOWN, amount or Decimal(0), won_at.astimezone(UTC).date())
        for currency, amount, won_at in conn.execute(select_)
    ]


def _revenue(deals_won: list[tuple[str, Decimal, date]]) -> dict[str, Revenue]:
    deals: dict[str, int] = {}
    amounts: dict[str, Decimal] = {}
    for key, amount, _ in deals_won:  # summed in Python: SQLite has no decimals
        deals[key] = deals.get(key, 0) + 1
        amounts[key] = amounts.get(key, Decimal(0)) + amount
    return {key: Revenue(deals[key], amounts[key].quantize(CENTS)) for key in sorted(deals)}


def _totals(conn: Connection, query: ReportQuery) -> Totals:
    lc, d = LIFECYCLE.c, DEAD_LETTERS.c
    leads_query = select(func.count()).select_from(LIFECYCLE).where(*_lead_filter(query))
    leads = conn.execute(leads_query).scalar_one()
    orphans = conn.execute(leads_query.where(lc.is_orphan.is_(True))).scalar_one()
    if not readable(conn, DEAD_LETTERS.name):
        return Totals(int(leads), int(orphans), None, {})
    dead_query = select(d.reason, func.count()).where(*_in_period(d.received_at, query))
    by_reason = {str(reason): int(n) for reason, n in conn.execute(dead_query.group_by(d.reason))}
    by_reason = dict(sorted(by_reason.items()))
    return Totals(int(leads), int(orphans), sum(by_reason.values()), by_reason)


def _details(conn: Connection, query: ReportQuery) -> Details:
    return Details(
        speed_histogram=speed_histogram(_response_seconds(conn, query)),
        sla_by_owner=_sla_by_owner(conn, query),
        rejections_by_campaign=_rejections(conn, query),
        attribution=_attribution_lines(conn, query),
        sla_owners=_sla_lines(conn, query, func.coalesce(SLA.c.owner_id, literal(UNKNOWN))),
    )


def speed_histogram(seconds: Iterable[float]) -> dict[str, int]:
    """Response times counted into SPEED_BUCKETS (upper bounds included)."""
    counts = dict.fromkeys((label for label, _ in SPEED_BUCKETS), 0)
    for value in seconds:
        label = next(label for label, bound in SPEED_BUCKETS if value <= bound)
        counts[label] += 1
    return counts


def _sla_by_owner(conn: Connection, query: ReportQuery) -> dict[str, dict[str, int]]:
    s = SLA.c
    owner = func.coalesce(s.owner_id, literal(UNKNOWN)).label("owner")
    select_ = _sla_query(query, owner, s.status, func.count()).group_by(owner, s.status)
    found: dict[str, dict[str, int]] = {}
    for who, status, n in conn.execute(select_):
        found.setdefault(str(who), {})[str(status)] = int(n)
    return {who: _with_statuses(found[who]) for who in sorted(found)}


def _rejections(conn: Connection, query: ReportQuery) -> dict[str, dict[str, int]]:
    """Leads whose current cycle was rejected, by campaign and reason."""
    lc = LIFECYCLE.c
    campaign = _dimension("campaign").label("campaign")
    rejected_at = func.coalesce(lc.recycled_at, lc.disqualified_at)
    select_ = (
        select(campaign, lc.rejection_reason, func.count())
        .where(
            lc.rejection_reason.is_not(None),
            *_lead_filter(query),
            *_in_period(rejected_at, query),
        )
        .group_by(campaign, lc.rejection_reason)
    )
    found: dict[str, dict[str, int]] = {}
    for key, reason, n in conn.execute(select_):
        found.setdefault(str(key), {})[str(reason)] = int(n)
    return {key: dict(sorted(found[key].items())) for key in sorted(found)}


def _attribution_lines(conn: Connection, query: ReportQuery) -> tuple[AttributionLine, ...] | None:
    if not inspect(conn).has_table(ATTRIBUTION.name):
        return None
    a, lc = ATTRIBUTION.c, LIFECYCLE.c
    select_ = (
        _won_leads(query, a.campaign_id, a.model, a.credit, a.lead_id, lc.amount, lc.currency)
        .select_from(ATTRIBUTION.join(LIFECYCLE, lc.lead_id == a.lead_id))
        .order_by(a.campaign_id, a.model)
    )
    credit: dict[tuple[str, str], Decimal] = {}
    leads: dict[tuple[str, str], set[str]] = {}
    revenue: dict[tuple[str, str], dict[str, Decimal]] = {}
    for campaign, model, share, lead_id, amount, currency in conn.execute(select_):
        key = (str(campaign), str(model))
        part = Decimal(str(share))
        credit[key] = credit.get(key, Decimal(0)) + part
        leads.setdefault(key, set()).add(lead_id)
        money = revenue.setdefault(key, {})
        code = currency or UNKNOWN
        money[code] = money.get(code, Decimal(0)) + part * Decimal(str(amount or 0))
    order = {model: i for i, model in enumerate(ATTRIBUTION_MODELS)}
    keys = sorted(credit, key=lambda k: (order.get(k[1], len(order)), k[1], k[0]))
    return tuple(
        AttributionLine(
            campaign_id=campaign,
            model=model,
            credit=credit[(campaign, model)],
            leads=len(leads[(campaign, model)]),
            revenue={c: v.quantize(CENTS) for c, v in sorted(revenue[(campaign, model)].items())},
        )
        for campaign, model in keys
    )


# -- opening the store -------------------------------------------------------------------------


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _check_sqlite_file(url: URL) -> None:
    """Refuse a missing SQLite file instead of creating an empty one."""
    if url.get_backend_name() != "sqlite" or url.query.get("uri") or url.query.get("mode"):
        return
    if url.database in (None, "", ":memory:"):
        return
    if not Path(url.database).is_file():
        raise StoreError(f"There is no SQLite store at {url.database}; {UPGRADE_HINT}.")


def _check_tables(conn: Connection, url: URL) -> None:
    present = set(inspect(conn).get_table_names())
    missing = [t.name for t in REQUIRED_TABLES if t.name not in present]
    if missing:
        raise PermanentStoreError(
            f"The store at {_shown(url)} lacks the table(s) {', '.join(missing)}; {UPGRADE_HINT}."
        )


def _store_error(error: DBAPIError, url: URL) -> StoreError:
    return StoreError(
        f"Cannot read the store at {_shown(url)} ({first_line(error)}); check that it is reachable,"
        f" and if it is new, {UPGRADE_HINT}."
    )


# -- the command -------------------------------------------------------------------------------


def open_engine(database_url: str) -> Engine:
    """An engine for ``database_url``; a bad URL or a missing driver is one StoreError sentence."""
    try:
        return make_engine(database_url)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        detail = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
        raise StoreError(
            f"Cannot open the store: bad database URL or driver ({detail}); check"
            " LEADFLOW_DATABASE_URL, e.g. sqlite:///leadflow.db or postgresql+psycopg://user@host/db."
        ) from error
