"""The dashboard's time views: this period against the previous one, funnel per week and month,
MQL-week cohorts and stage velocity. Read from lead_stage_transitions in Python (one query),
so SQLite and PostgreSQL bucket weeks the same way (ISO weeks, Monday first, UTC).
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from leadflow.pipeline.reporting.model import DAY_MIN, Report, ReportQuery
from leadflow.pipeline.reporting.queries import build_report
from leadflow.schemas.vocabulary import FUNNEL_PATH, UNKNOWN
from leadflow.sinks.models import LIFECYCLE, TRANSITIONS

GLANCE_DAYS = 30  # with no period chosen, "on track" is the last 30 days against the 30 before
VELOCITY_STEPS = tuple(itertools.pairwise(FUNNEL_PATH))


@dataclass(frozen=True)
class Glance:
    """The one-screen answer: the period shown, its report, and the previous period's."""

    since: date
    until: date
    current: Report
    previous: Report


@dataclass(frozen=True)
class Trends:
    """Funnel entries per week and month, MQL-week cohorts, median days between stages."""

    weekly: Mapping[str, Mapping[str, int]]  # "2026-W05" -> stage -> distinct leads
    monthly: Mapping[str, Mapping[str, int]]  # "2026-01" -> stage -> distinct leads
    cohorts: Mapping[str, Mapping[str, int]]  # MQL week -> mql/sal/sql/won -> leads
    velocity: Mapping[str, float | None]  # "mql->sal" -> median days


def glance_period(engine: Engine, query: ReportQuery) -> tuple[date, date]:
    """The query's period when it has both ends, else the last GLANCE_DAYS with data."""
    if query.since and query.until:
        return query.since, query.until
    with engine.connect() as conn:
        last = conn.execute(select(func.max(TRANSITIONS.c.entered_at))).scalar()
    end = _utc(last).date() if last is not None else datetime.now(UTC).date()
    return max(DAY_MIN, end - timedelta(days=GLANCE_DAYS - 1)), end


def read_glance(engine: Engine, query: ReportQuery) -> Glance:
    """This period's report and the one of the same length just before it."""
    since, until = glance_period(engine, query)
    length = until - since + timedelta(days=1)
    current = build_report(engine, replace(query, since=since, until=until, details=False))
    before = max(DAY_MIN, since - length)
    prior_end = max(DAY_MIN, since - timedelta(days=1))
    previous = build_report(engine, replace(query, since=before, until=prior_end, details=False))
    return Glance(since, until, current, previous)


def read_trends(conn: Connection, query: ReportQuery) -> Trends:
    """Every view of Trends for the leads the query selects, over the query's period."""
    t, lc = TRANSITIONS.c, LIFECYCLE.c
    select_ = select(t.lead_id, t.cycle_no, t.stage, t.entered_at).select_from(
        TRANSITIONS.outerjoin(LIFECYCLE, lc.lead_id == t.lead_id)
    )
    if query.source is not None:
        select_ = select_.where(func.coalesce(lc.source, UNKNOWN) == query.source)
    if query.campaign is not None:
        select_ = select_.where(func.coalesce(lc.campaign_id, UNKNOWN) == query.campaign)
    if query.start is not None:
        select_ = select_.where(t.entered_at >= query.start)
    if query.end is not None:
        select_ = select_.where(t.entered_at < query.end)
    rows = [(str(a), int(b), str(c), _utc(d)) for a, b, c, d in conn.execute(select_)]
    return Trends(
        weekly=_bucketed(rows, week_of),
        monthly=_bucketed(rows, lambda d: d.strftime("%Y-%m")),
        cohorts=_cohorts(rows),
        velocity=_velocity(rows),
    )


Row = tuple[str, int, str, datetime]


def week_of(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _bucketed(rows: list[Row], key: object) -> dict[str, dict[str, int]]:
    leads: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for lead_id, _, stage, at in rows:
        if stage in FUNNEL_PATH:
            leads[key(at)][stage].add(lead_id)  # type: ignore[operator]
    return {
        bucket: {s: len(leads[bucket].get(s, ())) for s in FUNNEL_PATH} for bucket in sorted(leads)
    }


def _cohorts(rows: list[Row]) -> dict[str, dict[str, int]]:
    """Leads by the week of their first MQL, and how many of them later reached each stage."""
    first_mql: dict[str, datetime] = {}
    for lead_id, _, stage, at in rows:
        if stage == "mql" and (lead_id not in first_mql or at < first_mql[lead_id]):
            first_mql[lead_id] = at
    reached: dict[str, set[str]] = defaultdict(set)
    for lead_id, _, stage, at in rows:
        if lead_id in first_mql and at >= first_mql[lead_id]:
            reached[lead_id].add(stage)
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FUNNEL_PATH[1:], 0))
    for lead_id, at in first_mql.items():
        for stage in FUNNEL_PATH[1:]:
            out[week_of(at)][stage] += stage in reached[lead_id]
    return dict(sorted(out.items()))


def _velocity(rows: list[Row]) -> dict[str, float | None]:
    """Median days from entering a stage to entering the next, per lead and cycle."""
    entered: dict[tuple[str, int], dict[str, datetime]] = defaultdict(dict)
    for lead_id, cycle, stage, at in rows:
        seen = entered[(lead_id, cycle)]
        if stage not in seen or at < seen[stage]:
            seen[stage] = at
    out: dict[str, float | None] = {}
    for a, b in VELOCITY_STEPS:
        days = [
            (stages[b] - stages[a]).total_seconds() / 86_400
            for stages in entered.values()
            if a in stages and b in stages and stages[b] >= stages[a]
        ]
        out[f"{a}->{b}"] = statistics.median(days) if days else None
    return out
