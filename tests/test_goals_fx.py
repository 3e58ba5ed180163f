"""A won_revenue goal in the reporting currency counts every currency converted at fx_rates."""

from __future__ import annotations

import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

from leadflow.pipeline.reporting import run_report
from leadflow.pipeline.reporting.model import ReportQuery
from leadflow.sinks import make_engine, upgrade
from leadflow.sinks.fx import Rate, load_rates
from leadflow.sinks.goals import goal_progress, make_goal, set_goal
from leadflow.sinks.models import REVENUE

DEALS = [  # (day, currency, amount): revenue_daily rows of 2026-Q1 and one of Q2
    (date(2026, 1, 10), "EUR", Decimal("100.00")),
    (date(2026, 2, 10), "USD", Decimal("200.00")),  # at 0.90 (rate of 2026-02-01)
    (date(2026, 1, 20), "USD", Decimal("10.00")),  # at 0.80 (rate of 2026-01-01)
    (date(2026, 3, 1), "BRL", Decimal("999.00")),  # no rate: left out
    (date(2026, 4, 1), "EUR", Decimal("5000.00")),  # another quarter
]
RATES = [
    Rate("USD", date(2026, 1, 1), Decimal("0.8")),
    Rate("USD", date(2026, 2, 1), Decimal("0.9")),
]
CONVERTED = Decimal("100.00") + Decimal("180.00") + Decimal("8.00")


def _store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        rows = [
            {"day": d, "source": "web", "campaign_id": "c1", "currency": c, "won_deals": 1,
             "won_amount": a}
            for d, c, a in DEALS
        ]  # fmt: skip
        with engine.begin() as conn:
            conn.execute(insert(REVENUE), rows)
        load_rates(engine, RATES, "EUR")
        set_goal(engine, make_goal("2026-Q1", "won_revenue", "576", "EUR"))
        set_goal(engine, make_goal("2026-Q1", "won_revenue", "420", "USD"))
    finally:
        engine.dispose()
    return url


def test_a_goal_in_the_reporting_currency_converts(tmp_path: Path) -> None:
    url = _store(tmp_path)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            progress = {p.goal.currency: p for p in goal_progress(conn)}
    finally:
        engine.dispose()
    assert progress["EUR"].actual == CONVERTED
    assert progress["EUR"].ratio == float(CONVERTED / 576)
    assert progress["USD"].actual == Decimal("210.00")  # its own currency only, unconverted
    out = io.StringIO()
    assert run_report(url, "json", out, ReportQuery()) == 0
    goals = {g["currency"]: g for g in json.loads(out.getvalue())["goals"]}
    assert Decimal(goals["EUR"]["actual"]) == CONVERTED


def test_without_rates_a_goal_counts_its_currency(tmp_path: Path) -> None:
    url = _store(tmp_path)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM fx_rates")
            progress = {p.goal.currency: p for p in goal_progress(conn)}
    finally:
        engine.dispose()
    assert progress["EUR"].actual == Decimal("100.00")
