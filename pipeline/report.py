"""The funnel, conversion, speed-to-lead, SLA and revenue report read from the shared store."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    Float,
    Integer,
    Numeric,
    String,
    TableClause,
    column,
    func,
    inspect,
    literal,
    select,
    table,
)
from sqlalchemy import Table as SqlTable
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql import Select

from agents.fold import STAGES
from pipeline.errors import PermanentStoreError, StoreError
from pipeline.goals import GoalProgress, goal_progress
from sinks.engine import make_engine
from sinks.models import Attribution
from sinks.types import UTCDateTime

SUCCESS_PATH = ("lead", "mql", "sal", "sql", "won")
STEP_PAIRS = tuple(itertools.pairwise(SUCCESS_PATH))
STEPS = tuple(f"{a}->{b}" for a, b in STEP_PAIRS)
SLA_STATUSES = ("met", "breached", "pending")
UNKNOWN = "unknown"
FORMATS = ("table", "json", "csv", "html")
DIMENSIONS = ("source", "campaign", "owner")
ATTRIBUTION_MODELS = ("first_touch", "last_touch", "linear", "w_shaped")
# Speed-to-lead histogram: (label, upper bound in seconds, inclusive).
SPEED_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<5m", 300.0),
    ("5m-1h", 3600.0),
    ("1h-4h", 4 * 3600.0),
    ("4h-24h", 24 * 3600.0),
    ("1d-3d", 72 * 3600.0),
    (">3d", math.inf),
)
PERCENTILE_METHOD = "nearest-rank"
CENTS = Decimal("0.01")
UPGRADE_HINT = "run `leadflow db upgrade` or start a worker first"

# The contract's tables (section 4), only the columns the report reads.
_lifecycle = table(
    "lead_lifecycle",
    column("lead_id", String()),
    column("stage", String()),
    column("source", String()),
    column("campaign_id", String()),
    column("owner_id", String()),
    column("amount", Numeric(18, 2)),
    column("currency", String()),
    column("is_orphan", Boolean()),
    column("won_at", UTCDateTime()),
    column("recycled_at", UTCDateTime()),
    column("disqualified_at", UTCDateTime()),
    column("rejection_reason", String()),
)
_transitions = table(
    "lead_stage_transitions",
    column("lead_id", String()),
    column("cycle_no", Integer()),
    column("stage", String()),
    column("entered_at", UTCDateTime()),
)
_sla = table(
    "handoff_sla",
    column("lead_id", String()),
    column("status", String()),
    column("response_seconds", Float()),
    column("mql_at", UTCDateTime()),
    column("owner_id", String()),
)
_dead = table("dead_letters", column("reason", String()), column("received_at", UTCDateTime()))
# Optional: stores from before migration 0005 lack it.
_attribution: SqlTable = Attribution.__table__  # type: ignore[assignment]
REQUIRED_TABLES: tuple[TableClause, ...] = (_lifecycle, _transitions, _sla, _dead)


# -- the report as plain data ------------------------------------------------------------------


@dataclass(frozen=True)
class ReportQuery:
    """What to read: a period of UTC days (both ends included), one source or campaign, a grouping.

    ``source`` and ``campaign`` match the lead's current values (``unknown`` matches none). The
    period selects stage entries (funnel), MQL times (speed to lead, SLA), win times (revenue,
    attribution), rejection times and dead-letter arrival times. Lead totals ignore the period;
    goals have periods of their own and ignore every filter.
    """

    since: date | None = None
    until: date | None = None
    source: str | None = None
    campaign: str | None = None
    by: str = "source"
    details: bool = False  # also read the histogram, per-owner SLA, rejections, attribution

    @property
    def start(self) -> datetime | None:
        return None if self.since is None else datetime.combine(self.since, time(), UTC)

    @property
    def end(self) -> datetime | None:
        """The first moment after the period (``until`` is included)."""
        if self.until is None:
            return None
        return datetime.combine(self.until + timedelta(days=1), time(), UTC)

    def filters(self) -> dict[str, str]:
        """The filters in force, as text (for output headers)."""
        values = {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "source": self.source,
            "campaign": self.campaign,
        }
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class AttributionLine:
    """One campaign's credit under one model: credit = attributed won deals."""

    campaign_id: str
    model: str
    credit: Decimal
    leads: int
    revenue: Mapping[str, Decimal]  # attributed won amount by currency (credit x amount)


@dataclass(frozen=True)
class Details:
    """The sections beyond the classic report, for the dashboard and ``--format html``."""

    speed_histogram: Mapping[str, int]  # SPEED_BUCKETS labels, in order
    sla_by_owner: Mapping[str, Mapping[str, int]]  # owner -> met/breached/pending
    rejections_by_campaign: Mapping[str, Mapping[str, int]]  # campaign -> reason -> leads
    attribution: tuple[AttributionLine, ...] | None  # None: the store has no attribution yet


@dataclass(frozen=True)
class Funnel:
    """Distinct leads that ever entered each stage, and conversion along the success path."""

    stages: Mapping[str, int]  # every stage of STAGES, in that order
    conversion: Mapping[str, float | None]  # "lead->mql" ...: next / previous, None if 0 before


@dataclass(frozen=True)
class SpeedToLead:
    """Handoff response times in seconds (nearest-rank percentiles over non-null responses)."""

    count: int
    p50_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class Revenue:
    """Won deals of one currency and their exact total amount."""

    won_deals: int
    won_amount: Decimal


@dataclass(frozen=True)
class Totals:
    """Leads, orphans (sales events but no lead.created yet) and dead letters by reason."""

    leads: int
    orphans: int
    dead_letters: int
    dead_letters_by_reason: Mapping[str, int]


@dataclass(frozen=True)
class Report:
    """Everything ``leadflow report`` prints; mappings are ordered (stages, then sorted keys)."""

    funnel: Funnel
    funnel_by_source: Mapping[str, Funnel]
    speed_to_lead: SpeedToLead
    sla: Mapping[str, int]  # met, breached, pending
    revenue: Mapping[str, Revenue]  # by currency
    totals: Totals
    goals: tuple[GoalProgress, ...] = ()
    query: ReportQuery = field(default_factory=ReportQuery)
    breakdown: Mapping[str, Funnel] = field(default_factory=dict)  # by query.by, unless source
    details: Details | None = None


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
    return Report(
        funnel=overall,
        funnel_by_source={src: _funnel(c) for src, c in by_source.items()},
        speed_to_lead=_speed_to_lead(conn, query),
        sla=_sla_counts(conn, query),
        revenue=_revenue(conn, query),
        totals=_totals(conn, query),
        goals=tuple(goal_progress(conn)),
        query=query,
        breakdown={key: _funnel(c) for key, c in breakdown.items()},
        details=_details(conn, query) if query.details else None,
    )


def _dimension(name: str) -> ColumnElement[str]:
    lc = _lifecycle.c
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
    t, lc = _transitions.c, _lifecycle.c
    joined = _transitions.outerjoin(_lifecycle, lc.lead_id == t.lead_id)
    return (
        select(*columns)
        .select_from(joined)
        .where(*_lead_filter(query), *_in_period(t.entered_at, query))
    )


def _stage_counts(conn: Connection, query: ReportQuery) -> dict[str, int]:
    t = _transitions.c
    select_ = _transitions_query(query, t.stage, func.count(t.lead_id.distinct()))
    return {stage: int(n) for stage, n in conn.execute(select_.group_by(t.stage))}


def _stage_counts_by(conn: Connection, query: ReportQuery, by: str) -> dict[str, dict[str, int]]:
    t = _transitions.c
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
    s, lc = _sla.c, _lifecycle.c
    joined = _sla.outerjoin(_lifecycle, lc.lead_id == s.lead_id)
    return (
        select(*columns)
        .select_from(joined)
        .where(*_lead_filter(query), *_in_period(s.mql_at, query))
    )


def _response_seconds(conn: Connection, query: ReportQuery) -> list[float]:
    s = _sla.c
    select_ = _sla_query(query, s.response_seconds).where(s.response_seconds.is_not(None))
    return sorted(float(v) for v in conn.execute(select_).scalars())


def _speed_to_lead(conn: Connection, query: ReportQuery) -> SpeedToLead:
    values = _response_seconds(conn, query)
    return SpeedToLead(len(values), percentile(values, 50), percentile(values, 90))


def _with_statuses(found: Mapping[str, int]) -> dict[str, int]:
    extra = sorted(set(found) - set(SLA_STATUSES))
    return {status: found.get(status, 0) for status in (*SLA_STATUSES, *extra)}


def _sla_counts(conn: Connection, query: ReportQuery) -> dict[str, int]:
    s = _sla.c
    select_ = _sla_query(query, s.status, func.count()).group_by(s.status)
    return _with_statuses({str(status): int(n) for status, n in conn.execute(select_)})


def _won_leads(query: ReportQuery, *columns: Any) -> Select[Any]:
    lc = _lifecycle.c
    return select(*columns).where(
        lc.stage == "won", *_lead_filter(query), *_in_period(lc.won_at, query)
    )


def _revenue(conn: Connection, query: ReportQuery) -> dict[str, Revenue]:
    lc = _lifecycle.c
    select_ = _won_leads(query, lc.currency, lc.amount)
    deals: dict[str, int] = {}
    amounts: dict[str, Decimal] = {}
    for currency, amount in conn.execute(select_):  # summed in Python: SQLite has no decimals
        key = currency or UNKNOWN
        deals[key] = deals.get(key, 0) + 1
        amounts[key] = amounts.get(key, Decimal(0)) + (amount or Decimal(0))
    return {key: Revenue(deals[key], amounts[key].quantize(CENTS)) for key in sorted(deals)}


def _totals(conn: Connection, query: ReportQuery) -> Totals:
    lc, d = _lifecycle.c, _dead.c
    leads_query = select(func.count()).select_from(_lifecycle).where(*_lead_filter(query))
    leads = conn.execute(leads_query).scalar_one()
    orphans = conn.execute(leads_query.where(lc.is_orphan.is_(True))).scalar_one()
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
    )


def speed_histogram(seconds: Iterable[float]) -> dict[str, int]:
    """Response times counted into SPEED_BUCKETS (upper bounds included)."""
    counts = dict.fromkeys((label for label, _ in SPEED_BUCKETS), 0)
    for value in seconds:
        label = next(label for label, bound in SPEED_BUCKETS if value <= bound)
        counts[label] += 1
    return counts


def _sla_by_owner(conn: Connection, query: ReportQuery) -> dict[str, dict[str, int]]:
    s = _sla.c
    owner = func.coalesce(s.owner_id, literal(UNKNOWN)).label("owner")
    select_ = _sla_query(query, owner, s.status, func.count()).group_by(owner, s.status)
    found: dict[str, dict[str, int]] = {}
    for who, status, n in conn.execute(select_):
        found.setdefault(str(who), {})[str(status)] = int(n)
    return {who: _with_statuses(found[who]) for who in sorted(found)}


def _rejections(conn: Connection, query: ReportQuery) -> dict[str, dict[str, int]]:
    """Leads whose current cycle was rejected, by campaign and reason."""
    lc = _lifecycle.c
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
    if not inspect(conn).has_table(_attribution.name):
        return None
    a, lc = _attribution.c, _lifecycle.c
    select_ = (
        _won_leads(query, a.campaign_id, a.model, a.credit, a.lead_id, lc.amount, lc.currency)
        .select_from(_attribution.join(_lifecycle, lc.lead_id == a.lead_id))
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
    origin = getattr(error, "orig", None) or error
    lines = str(origin).strip().splitlines()
    detail = (lines[0] if lines else type(origin).__name__).rstrip(".")
    return StoreError(
        f"Cannot read the store at {_shown(url)} ({detail}); check that it is reachable,"
        f" and if it is new, {UPGRADE_HINT}."
    )


# -- output formats ----------------------------------------------------------------------------


def _funnel_dict(funnel: Funnel) -> dict[str, Any]:
    return {"stages": dict(funnel.stages), "conversion": dict(funnel.conversion)}


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: Decimals as strings, ordered keys.

    Beyond the classic keys: ``filters`` (when any), ``funnel_by_<by>`` for ``--by campaign`` or
    ``owner``, and with details ``speed_histogram``, ``sla_by_owner``,
    ``rejections_by_campaign`` and ``attribution`` (null when the store has none yet).
    """
    data = _classic_dict(report)
    filters = report.query.filters()
    if filters:
        data = {"filters": filters, **data}
    if report.query.by != "source":
        data[f"funnel_by_{report.query.by}"] = {
            key: _funnel_dict(f) for key, f in report.breakdown.items()
        }
    details = report.details
    if details is not None:
        data["speed_histogram"] = dict(details.speed_histogram)
        data["sla_by_owner"] = {k: dict(v) for k, v in details.sla_by_owner.items()}
        data["rejections_by_campaign"] = {
            k: dict(v) for k, v in details.rejections_by_campaign.items()
        }
        data["attribution"] = (
            None
            if details.attribution is None
            else [
                {
                    "campaign_id": line.campaign_id,
                    "model": line.model,
                    "credit": str(line.credit),
                    "leads": line.leads,
                    "revenue": {c: str(v) for c, v in line.revenue.items()},
                }
                for line in details.attribution
            ]
        )
    return data


def _classic_dict(report: Report) -> dict[str, Any]:
    speed = report.speed_to_lead
    totals = report.totals
    return {
        "funnel": _funnel_dict(report.funnel),
        "funnel_by_source": {s: _funnel_dict(f) for s, f in report.funnel_by_source.items()},
        "speed_to_lead": {
            "count": speed.count,
            "p50_seconds": speed.p50_seconds,
            "p90_seconds": speed.p90_seconds,
            "percentile_method": PERCENTILE_METHOD,
        },
        "sla": dict(report.sla),
        "revenue": {
            currency: {"won_deals": r.won_deals, "won_amount": str(r.won_amount)}
            for currency, r in report.revenue.items()
        },
        "totals": {
            "leads": totals.leads,
            "orphans": totals.orphans,
            "dead_letters": totals.dead_letters,
            "dead_letters_by_reason": dict(totals.dead_letters_by_reason),
        },
        "goals": [
            {
                "period": p.goal.period,
                "metric": p.goal.metric,
                "currency": p.goal.currency,
                "target": str(p.goal.target),
                "actual": str(p.actual),
                "ratio": p.ratio,
            }
            for p in report.goals
        ],
    }


def to_json(report: Report) -> str:
    """The report as indented JSON with stable key order; amounts as decimal strings."""
    return json.dumps(to_dict(report), indent=2) + "\n"


CSV_HEADER = ("section", "key", "subkey", "value")


def csv_rows(report: Report) -> Iterable[tuple[str, str, str, str]]:
    """Rows (section, key, subkey, value); None is the empty string, floats use repr.

    Sections beyond the classic ones: ``filters``; ``funnel_by_<by>`` and ``conversion_by_<by>``;
    with details ``speed_histogram`` (bucket), ``sla_by_owner`` (owner, status),
    ``rejections`` (campaign, reason), ``attribution`` (campaign, model: credit),
    ``attribution_leads`` (campaign, model) and ``attribution_revenue`` (campaign,
    model:currency); ``attribution`` / ``none`` when the store has no attribution yet.
    """
    yield from (("filters", key, "", value) for key, value in report.query.filters().items())
    yield from _funnel_rows(report.funnel, None)
    for source, funnel in report.funnel_by_source.items():
        yield from _funnel_rows(funnel, source)
    if report.query.by != "source":
        for key, funnel in report.breakdown.items():
            yield from _funnel_rows(funnel, key, report.query.by)
    speed = report.speed_to_lead
    yield "speed_to_lead", "count", "", str(speed.count)
    yield "speed_to_lead", "p50_seconds", "", _cell(speed.p50_seconds)
    yield "speed_to_lead", "p90_seconds", "", _cell(speed.p90_seconds)
    yield from (("sla", status, "", str(n)) for status, n in report.sla.items())
    for currency, revenue in report.revenue.items():
        yield "revenue", currency, "won_deals", str(revenue.won_deals)
        yield "revenue", currency, "won_amount", str(revenue.won_amount)
    totals = report.totals
    yield "totals", "leads", "", str(totals.leads)
    yield "totals", "orphans", "", str(totals.orphans)
    yield "totals", "dead_letters", "", str(totals.dead_letters)
    for reason, n in totals.dead_letters_by_reason.items():
        yield "dead_letters", reason, "", str(n)
    for p in report.goals:
        key = f"{p.goal.period}:{p.goal.metric}:{p.goal.currency}"
        yield "goals", key, "target", str(p.goal.target)
        yield "goals", key, "actual", str(p.actual)
        yield "goals", key, "ratio", _cell(p.ratio)
    if report.details is not None:
        yield from _detail_rows(report.details)


def _detail_rows(details: Details) -> Iterable[tuple[str, str, str, str]]:
    yield from (("speed_histogram", k, "", str(n)) for k, n in details.speed_histogram.items())
    for owner, statuses in details.sla_by_owner.items():
        yield from (("sla_by_owner", owner, status, str(n)) for status, n in statuses.items())
    for campaign, reasons in details.rejections_by_campaign.items():
        yield from (("rejections", campaign, reason, str(n)) for reason, n in reasons.items())
    if details.attribution is None:
        yield "attribution", "none", "", ""
        return
    for line in details.attribution:
        yield "attribution", line.campaign_id, line.model, str(line.credit)
        yield "attribution_leads", line.campaign_id, line.model, str(line.leads)
        for currency, amount in line.revenue.items():
            yield "attribution_revenue", line.campaign_id, f"{line.model}:{currency}", str(amount)


def _funnel_rows(
    funnel: Funnel, source: str | None, by: str = "source"
) -> Iterable[tuple[str, str, str, str]]:
    """Overall: key=stage or step; by source: key=source, subkey=stage or step."""
    suffix = "" if source is None else f"_by_{by}"
    for section, values in (("funnel", funnel.stages), ("conversion", funnel.conversion)):
        for name, value in values.items():
            key, subkey = (name, "") if source is None else (source, name)
            yield section + suffix, key, subkey, _cell(value)


def _cell(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def to_csv(report: Report) -> str:
    """The report as one CSV with a header and a ``section`` column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(report))
    return buffer.getvalue()


def percent(rate: float | None) -> str:
    """A ratio as a percentage with one decimal; '-' when there is none."""
    return "-" if rate is None else f"{rate:.1%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}h {rest // 60:02d}m {rest % 60:02d}s ({seconds:g} s)"


def _funnel_table(funnel: Funnel) -> Table:
    grid = Table(title="Funnel: distinct leads that ever entered each stage")
    for name in ("stage", "leads", "conversion from previous"):
        grid.add_column(name, justify="left" if name == "stage" else "right")
    rates = {step.split("->")[1]: rate for step, rate in funnel.conversion.items()}
    for stage, n in funnel.stages.items():
        grid.add_row(stage, str(n), percent(rates[stage]) if stage in rates else "")
    return grid


def _by_source_tables(
    report: Report, by: str = "source", groups: Mapping[str, Funnel] | None = None
) -> tuple[Table, Table]:
    stages = Table(title=f"Leads per stage by {by}")
    rates = Table(title=f"Conversion by {by}")
    for grid, names in ((stages, report.funnel.stages), (rates, report.funnel.conversion)):
        grid.add_column(by)
        for name in names:
            grid.add_column(_SHORT.get(name, name), justify="right")
    chosen = report.funnel_by_source if groups is None else groups
    for source, funnel in chosen.items():
        stages.add_row(source, *(str(funnel.stages.get(s, 0)) for s in report.funnel.stages))
        rates.add_row(source, *(percent(r) for r in funnel.conversion.values()))
    return stages, rates


_SHORT = {"recycled": "recyc.", "disqualified": "disq."}


def _key_value_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    grid = Table(title=title, min_width=len(title) + 2)
    grid.add_column("")
    grid.add_column("value", justify="right")
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def render_table(report: Report, console: Console) -> None:
    """Print the report as rich tables."""
    speed, totals = report.speed_to_lead, report.totals
    filters = report.query.filters()
    if filters:
        console.print("Filters: " + ", ".join(f"{k}={v}" for k, v in filters.items()))
    console.print(_funnel_table(report.funnel))
    if report.query.by != "source":
        console.print(*_by_source_tables(report, report.query.by, report.breakdown))
    elif report.funnel_by_source:
        console.print(*_by_source_tables(report))
    console.print(
        _key_value_table(
            f"Speed to lead ({PERCENTILE_METHOD})",
            [
                ("responses", str(speed.count)),
                ("p50", _duration(speed.p50_seconds)),
                ("p90", _duration(speed.p90_seconds)),
            ],
        )
    )
    console.print(_key_value_table("Handoff SLA", [(k, str(n)) for k, n in report.sla.items()]))
    revenue = Table(title="Won revenue")
    for name in ("currency", "won deals", "won amount"):
        revenue.add_column(name, justify="left" if name == "currency" else "right")
    for currency, r in report.revenue.items():
        revenue.add_row(currency, str(r.won_deals), f"{r.won_amount:,}")
    console.print(revenue)
    rows = [("leads", str(totals.leads)), ("orphans", str(totals.orphans))]
    rows.append(("dead letters", str(totals.dead_letters)))
    rows += [(f"  {reason}", str(n)) for reason, n in totals.dead_letters_by_reason.items()]
    console.print(_key_value_table("Totals", rows))
    if report.goals:
        console.print(goals_table(report.goals))
    if report.details is not None:
        _render_details(report.details, console)


def _render_details(details: Details, console: Console) -> None:
    console.print(
        _key_value_table(
            "Speed to lead by delay",
            [(k, str(n)) for k, n in details.speed_histogram.items()],
        )
    )
    owners = Table(title="Handoff SLA by owner", min_width=24)
    owners.add_column("owner")
    for status in SLA_STATUSES:
        owners.add_column(status, justify="right")
    for owner, statuses in details.sla_by_owner.items():
        owners.add_row(owner, *(str(statuses.get(s, 0)) for s in SLA_STATUSES))
    console.print(owners)
    rejections = Table(title="Rejection reasons by campaign (current cycle)", min_width=48)
    for name in ("campaign", "reason", "leads"):
        rejections.add_column(name, justify="right" if name == "leads" else "left")
    for campaign, reasons in details.rejections_by_campaign.items():
        for reason, n in reasons.items():
            rejections.add_row(campaign, reason, str(n))
    console.print(rejections)
    if details.attribution is None:
        console.print("Attribution: no attribution yet (the store has no attribution table).")
        return
    grid = Table(title="Attribution of won leads (credit = attributed won deals)", min_width=60)
    for name in ("campaign", "model", "credit", "leads", "attributed revenue"):
        grid.add_column(name, justify="left" if name in ("campaign", "model") else "right")
    for line in details.attribution:
        money = ", ".join(f"{v:,} {c}" for c, v in line.revenue.items())
        grid.add_row(
            line.campaign_id, line.model, f"{line.credit.normalize():f}", str(line.leads), money
        )
    console.print(grid)


def goals_table(progress: Iterable[GoalProgress]) -> Table:
    """Shared goals: each one's actual against its target."""
    table = Table(title="Shared goals")
    for name in ("period", "metric", "currency", "target", "actual", "progress"):
        table.add_column(
            name, justify="right" if name in ("target", "actual", "progress") else "left"
        )
    for p in progress:
        table.add_row(
            p.goal.period,
            p.goal.metric,
            p.goal.currency or "all",
            f"{p.goal.target:,}",
            f"{p.actual:,}",
            percent(p.ratio),
        )
    return table


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


def run_report(database_url: str, fmt: str, out: TextIO, query: ReportQuery | None = None) -> int:
    """``leadflow report``: read the store at ``database_url`` and write ``fmt`` to ``out``."""
    query = query or ReportQuery(details=True)
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    engine = open_engine(database_url)
    try:
        report = build_report(engine, query)
    finally:
        engine.dispose()
    if fmt == "table":
        render_table(report, Console(file=out))
    elif fmt == "html":
        from pipeline.dashboard import render_report_html

        out.write(render_report_html(report))
    else:
        out.write(to_json(report) if fmt == "json" else to_csv(report))
    return 0
