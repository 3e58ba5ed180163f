"""Shared goals: one objective per period for both teams, and how far the store says we are."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Connection, Engine, func, inspect, select

from leadflow.schemas.errors import LeadflowError
from leadflow.sinks.fx import RateBook, convert
from leadflow.sinks.models import FUNNEL, GOALS, REVENUE

GOAL_METRICS = ("won_revenue", "won_deals", "mqls", "sql")
COUNT_METRICS = frozenset({"won_deals", "mqls", "sql"})  # goals that count, in whole numbers
MAX_TARGET = Decimal("9999999999999999.99")  # what shared_goals.target holds: Numeric(18, 2)
_PERIOD = re.compile(r"^(\d{4})(?:-Q([1-4])|-(0[1-9]|1[0-2]))?$")


@dataclass(frozen=True, slots=True)
class Goal:
    period: str
    metric: str
    currency: str  # '' for every currency
    target: Decimal


@dataclass(frozen=True, slots=True)
class GoalProgress:
    goal: Goal
    actual: Decimal
    ratio: float | None  # actual / target; None when the target is 0


def parse_period(period: str) -> tuple[date, date]:
    """``2026``, ``2026-Q4`` or ``2026-11`` as [first day, first day after)."""
    match = _PERIOD.match(period)
    if match is None:
        raise LeadflowError(
            f"bad period {period!r}: use a year, a quarter or a month, e.g. 2026-Q4"
        )
    year, quarter, month = int(match[1]), match[2], match[3]
    if quarter:
        first = (int(quarter) - 1) * 3 + 1
        return date(year, first, 1), _add_months(year, first, 3)
    if month:
        return date(year, int(month), 1), _add_months(year, int(month), 1)
    return date(year, 1, 1), date(year + 1, 1, 1)


def _add_months(year: int, month: int, months: int) -> date:
    index = year * 12 + month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def make_goal(period: str, metric: str, target: str, currency: str | None) -> Goal:
    """A validated goal; every mistake is one sentence saying what to type instead."""
    parse_period(period)
    if metric not in GOAL_METRICS:
        raise LeadflowError(f"bad metric {metric!r}: choose one of {', '.join(GOAL_METRICS)}")
    code = (currency or "").upper()
    if metric == "won_revenue" and not re.fullmatch(r"[A-Z]{3}", code):
        raise LeadflowError("won_revenue goals need --currency, three letters such as EUR")
    if code and not re.fullmatch(r"[A-Z]{3}", code):
        raise LeadflowError(f"bad currency {currency!r}: three letters such as EUR")
    if metric in ("mqls", "sql") and code:
        raise LeadflowError(f"{metric} goals count leads, not money: drop --currency")
    try:
        amount = Decimal(target)
    except InvalidOperation:
        raise LeadflowError(f"bad target {target!r}: a number such as 250000") from None
    if not amount.is_finite() or amount < 0:
        raise LeadflowError(f"bad target {target!r}: a number >= 0")
    if amount > MAX_TARGET:
        raise LeadflowError(f"bad target {target!r}: at most {MAX_TARGET:,}")
    return Goal(period, metric, code, amount.quantize(Decimal("0.01")))


def set_goal(engine: Engine, goal: Goal) -> None:
    """Insert or replace the goal of (period, metric, currency)."""
    with engine.begin() as conn:
        conn.execute(
            GOALS.delete().where(
                GOALS.c.period == goal.period,
                GOALS.c.metric == goal.metric,
                GOALS.c.currency == goal.currency,
            )
        )
        conn.execute(
            GOALS.insert().values(
                period=goal.period,
                metric=goal.metric,
                currency=goal.currency,
                target=goal.target,
                updated_at=datetime.now(UTC),
            )
        )


def delete_goals(engine: Engine, period: str, metric: str | None, currency: str | None) -> int:
    """Delete the goals of ``period`` (only ``metric``'s, only ``currency``'s when given)."""
    parse_period(period)
    conditions = [GOALS.c.period == period]
    if metric is not None:
        conditions.append(GOALS.c.metric == metric)
    if currency is not None:
        conditions.append(GOALS.c.currency == currency.upper())
    with engine.begin() as conn:
        return int(conn.execute(GOALS.delete().where(*conditions)).rowcount)


def read_goals(conn: Connection, period: str | None = None) -> list[Goal]:
    """The goals, ordered; only those of ``period`` when given."""
    if not inspect(conn).has_table("shared_goals"):
        return []
    query = select(GOALS.c.period, GOALS.c.metric, GOALS.c.currency, GOALS.c.target)
    if period is not None:
        query = query.where(GOALS.c.period == period)
    rows = conn.execute(query.order_by(GOALS.c.period, GOALS.c.metric, GOALS.c.currency))
    return [Goal(p, m, c, Decimal(t)) for p, m, c, t in rows]


def goal_progress(conn: Connection, period: str | None = None) -> list[GoalProgress]:
    """Each goal (of ``period`` if given) with its actual, from funnel_daily and revenue_daily.

    A won_revenue goal in the reporting currency of fx_rates counts the deals of every currency
    converted at the rate of their day (sinks/fx.py); deals of a currency without a rate on or
    before that day are left out of it. A goal in another currency counts that currency only.
    """
    out = []
    book = RateBook(conn)
    for goal in read_goals(conn, period):
        if goal.metric == "won_revenue" and goal.currency == book.to_currency:
            actual = _converted_revenue(conn, goal, book)
        else:
            actual = _actual(conn, goal)
        ratio = float(actual / goal.target) if goal.target else None
        out.append(GoalProgress(goal, actual, ratio))
    return out


def _converted_revenue(conn: Connection, goal: Goal, book: RateBook) -> Decimal:
    start, end = parse_period(goal.period)
    r = REVENUE.c
    query = select(r.currency, r.won_amount, r.day).where(r.day >= start, r.day < end)
    converted = convert(book, ((c, a, d) for c, a, d in conn.execute(query)))
    return converted.total if converted is not None else Decimal("0.00")


def _actual(conn: Connection, goal: Goal) -> Decimal:
    start, end = parse_period(goal.period)
    if goal.metric in ("mqls", "sql"):
        f = FUNNEL.c
        stage = "mql" if goal.metric == "mqls" else "sql"
        query = select(func.sum(f.leads)).where(f.stage == stage, f.day >= start, f.day < end)
    else:
        r = REVENUE.c
        column = r.won_amount if goal.metric == "won_revenue" else r.won_deals
        query = select(func.sum(column)).where(r.day >= start, r.day < end)
        if goal.currency:
            query = query.where(r.currency == goal.currency)
    value = conn.execute(query).scalar()  # typed: the exact amount on every backend
    return Decimal(str(value)).quantize(Decimal("0.01")) if value is not None else Decimal("0.00")
