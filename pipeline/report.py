"""The funnel, conversion, speed-to-lead, SLA and revenue report read from the shared store."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from sqlalchemy import (
    Boolean,
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
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from agents.fold import STAGES
from pipeline.errors import PermanentStoreError, StoreError
from pipeline.goals import GoalProgress, goal_progress
from sinks.engine import make_engine

SUCCESS_PATH = ("lead", "mql", "sal", "sql", "won")
STEP_PAIRS = tuple(itertools.pairwise(SUCCESS_PATH))
STEPS = tuple(f"{a}->{b}" for a, b in STEP_PAIRS)
SLA_STATUSES = ("met", "breached", "pending")
UNKNOWN = "unknown"
FORMATS = ("table", "json", "csv")
PERCENTILE_METHOD = "nearest-rank"
CENTS = Decimal("0.01")
UPGRADE_HINT = "run `leadflow db upgrade` or start a worker first"

# The contract's tables (section 4), only the columns the report reads.
_lifecycle = table(
    "lead_lifecycle",
    column("lead_id", String()),
    column("stage", String()),
    column("source", String()),
    column("amount", Numeric(18, 2)),
    column("currency", String()),
    column("is_orphan", Boolean()),
)
_transitions = table(
    "lead_stage_transitions",
    column("lead_id", String()),
    column("cycle_no", Integer()),
    column("stage", String()),
)
_sla = table("handoff_sla", column("status", String()), column("response_seconds", Float()))
_dead = table("dead_letters", column("reason", String()))
REQUIRED_TABLES: tuple[TableClause, ...] = (_lifecycle, _transitions, _sla, _dead)


# -- the report as plain data ------------------------------------------------------------------


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


# -- building it -------------------------------------------------------------------------------


def build_report(engine: Engine) -> Report:
    """Read the store behind ``engine`` into a Report (one consistent read transaction)."""
    _check_sqlite_file(engine.url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                _check_tables(conn, engine.url)
                return _read_report(conn)
    except DBAPIError as error:
        raise _store_error(error, engine.url) from error


def _read_report(conn: Connection) -> Report:
    overall = _funnel(_stage_counts(conn))
    return Report(
        funnel=overall,
        funnel_by_source={src: _funnel(c) for src, c in _stage_counts_by_source(conn).items()},
        speed_to_lead=_speed_to_lead(conn),
        sla=_sla_counts(conn),
        revenue=_revenue(conn),
        totals=_totals(conn),
        goals=tuple(goal_progress(conn)),
    )


def _stage_counts(conn: Connection) -> dict[str, int]:
    t = _transitions.c
    query = select(t.stage, func.count(t.lead_id.distinct())).group_by(t.stage)
    return {stage: int(n) for stage, n in conn.execute(query)}


def _stage_counts_by_source(conn: Connection) -> dict[str, dict[str, int]]:
    t, lc = _transitions.c, _lifecycle.c
    source = func.coalesce(lc.source, literal(UNKNOWN)).label("source")
    joined = _transitions.outerjoin(_lifecycle, lc.lead_id == t.lead_id)
    query = (
        select(source, t.stage, func.count(t.lead_id.distinct()))
        .select_from(joined)
        .group_by(source, t.stage)
    )
    counts: dict[str, dict[str, int]] = {}
    for src, stage, n in conn.execute(query):
        counts.setdefault(src, {})[stage] = int(n)
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


def _speed_to_lead(conn: Connection) -> SpeedToLead:
    s = _sla.c
    query = select(s.response_seconds).where(s.response_seconds.is_not(None))
    values = sorted(float(v) for v in conn.execute(query).scalars())
    return SpeedToLead(len(values), percentile(values, 50), percentile(values, 90))


def _sla_counts(conn: Connection) -> dict[str, int]:
    s = _sla.c
    query = select(s.status, func.count()).group_by(s.status)
    found: dict[str, int] = {str(status): int(n) for status, n in conn.execute(query)}
    extra = sorted(set(found) - set(SLA_STATUSES))
    return {status: found.get(status, 0) for status in (*SLA_STATUSES, *extra)}


def _revenue(conn: Connection) -> dict[str, Revenue]:
    lc = _lifecycle.c
    query = select(lc.currency, lc.amount).where(lc.stage == "won")
    deals: dict[str, int] = {}
    amounts: dict[str, Decimal] = {}
    for currency, amount in conn.execute(query):  # summed in Python: SQLite has no decimals
        key = currency or UNKNOWN
        deals[key] = deals.get(key, 0) + 1
        amounts[key] = amounts.get(key, Decimal(0)) + (amount or Decimal(0))
    return {key: Revenue(deals[key], amounts[key].quantize(CENTS)) for key in sorted(deals)}


def _totals(conn: Connection) -> Totals:
    lc, d = _lifecycle.c, _dead.c
    leads = conn.execute(select(func.count()).select_from(_lifecycle)).scalar_one()
    orphan_query = select(func.count()).select_from(_lifecycle).where(lc.is_orphan.is_(True))
    orphans = conn.execute(orphan_query).scalar_one()
    by_reason = {
        str(reason): int(n)
        for reason, n in conn.execute(select(d.reason, func.count()).group_by(d.reason))
    }
    by_reason = dict(sorted(by_reason.items()))
    return Totals(int(leads), int(orphans), sum(by_reason.values()), by_reason)


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
    """The report as JSON-ready data: Decimals as strings, ordered keys."""
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
    """Rows (section, key, subkey, value); None is the empty string, floats use repr."""
    yield from _funnel_rows(report.funnel, None)
    for source, funnel in report.funnel_by_source.items():
        yield from _funnel_rows(funnel, source)
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


def _funnel_rows(funnel: Funnel, source: str | None) -> Iterable[tuple[str, str, str, str]]:
    """Overall: key=stage or step; by source: key=source, subkey=stage or step."""
    suffix = "" if source is None else "_by_source"
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


def _pct(rate: float | None) -> str:
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
        grid.add_row(stage, str(n), _pct(rates[stage]) if stage in rates else "")
    return grid


def _by_source_tables(report: Report) -> tuple[Table, Table]:
    stages = Table(title="Leads per stage by source")
    rates = Table(title="Conversion by source")
    for grid, names in ((stages, report.funnel.stages), (rates, report.funnel.conversion)):
        grid.add_column("source")
        for name in names:
            grid.add_column(_SHORT.get(name, name), justify="right")
    for source, funnel in report.funnel_by_source.items():
        stages.add_row(source, *(str(funnel.stages.get(s, 0)) for s in report.funnel.stages))
        rates.add_row(source, *(_pct(r) for r in funnel.conversion.values()))
    return stages, rates


_SHORT = {"recycled": "recyc.", "disqualified": "disq."}


def _key_value_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    grid = Table(title=title)
    grid.add_column("")
    grid.add_column("value", justify="right")
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def render_table(report: Report, console: Console) -> None:
    """Print the report as rich tables."""
    speed, totals = report.speed_to_lead, report.totals
    console.print(_funnel_table(report.funnel))
    if report.funnel_by_source:
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
            _pct(p.ratio),
        )
    return table


# -- the command -------------------------------------------------------------------------------


def run_report(database_url: str, fmt: str, out: TextIO) -> int:
    """``leadflow report``: read the store at ``database_url`` and write ``fmt`` to ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    try:
        engine = make_engine(database_url)
    except (SQLAlchemyError, ImportError) as error:
        detail = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
        raise StoreError(
            f"Cannot open the store: bad database URL or driver ({detail})."
        ) from error
    try:
        report = build_report(engine)
    finally:
        engine.dispose()
    if fmt == "table":
        render_table(report, Console(file=out))
    else:
        out.write(to_json(report) if fmt == "json" else to_csv(report))
    return 0
