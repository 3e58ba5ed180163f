"""The shared report as plain data: what was asked (ReportQuery) and what was read (Report)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from leadflow.schemas.vocabulary import FUNNEL_PATH
from leadflow.sinks.fx import Converted
from leadflow.sinks.goals import GoalProgress

STEP_PAIRS = tuple(itertools.pairwise(FUNNEL_PATH))
STEPS = tuple(f"{a}->{b}" for a, b in STEP_PAIRS)
FORMATS = ("table", "json", "csv", "html")
DIMENSIONS = ("source", "campaign", "owner")
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
# The days a report period may name: the day after DAY_MAX still exists, and every database
# reads both ends.
DAY_MIN = date(1970, 1, 1)
DAY_MAX = date(9998, 12, 31)


def check_day(name: str, day: date) -> date:
    """``day`` if a period may start or end on it; else ValueError, one sentence."""
    if not DAY_MIN <= day <= DAY_MAX:
        raise ValueError(
            f"{name} {day.isoformat()} is out of range: give a day from"
            f" {DAY_MIN.isoformat()} to {DAY_MAX.isoformat()}"
        )
    return day


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
class SlaLine:
    """The handoff SLA of one policy or owner: outcomes, and speed to lead on both clocks.

    Rates are over decided cycles (met + breached), like the headline's met rate; ``business``
    reads response_business_seconds and ``wall`` response_seconds (nearest-rank percentiles).
    """

    key: str
    met: int
    breached: int
    pending: int
    business: SpeedToLead
    wall: SpeedToLead

    @property
    def decided(self) -> int:
        return self.met + self.breached

    @property
    def met_rate(self) -> float | None:
        return self.met / self.decided if self.decided else None

    @property
    def breach_rate(self) -> float | None:
        return self.breached / self.decided if self.decided else None


@dataclass(frozen=True)
class Details:
    """The sections beyond the classic report, for the dashboard and ``--format html``."""

    speed_histogram: Mapping[str, int]  # SPEED_BUCKETS labels, in order
    sla_by_owner: Mapping[str, Mapping[str, int]]  # owner -> met/breached/pending
    rejections_by_campaign: Mapping[str, Mapping[str, int]]  # campaign -> reason -> leads
    attribution: tuple[AttributionLine, ...] | None  # None: the store has no attribution yet
    sla_owners: tuple[SlaLine, ...] = ()  # by owner, sorted by owner


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
    """Leads, orphans (sales events but no lead.created yet) and dead letters by reason.

    ``dead_letters`` is None when the database role may not read them (marketing, sales).
    """

    leads: int
    orphans: int
    dead_letters: int | None
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
    converted: Converted | None = None  # won revenue in the reporting currency (fx_rates)
    sla_by_policy: tuple[SlaLine, ...] = ()  # by policy name (SINGLE_CLOCK for the single clock)
