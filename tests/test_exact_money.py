"""Money stays exact on SQLite: integer units in the store, exact sums in SQL, the report,
the goals and the dashboard (sinks/types.py ExactNumeric, migration 0011)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text

from leadflow.agents.codec import event_row
from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig, fold
from leadflow.pipeline.reporting.html import render_report_html
from leadflow.pipeline.reporting.queries import build_report
from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks import SqlSink, make_engine, upgrade
from leadflow.sinks.migrate import MIGRATIONS, alembic_config
from leadflow.sinks.models import FX_RATES, LIFECYCLE, REVENUE, TABLES
from leadflow.sinks.types import ExactNumeric, from_units, to_units

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
WON_AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
CONFIG = FoldConfig(24 * 3600.0, frozenset({"not_now"}))
BIG = Decimal("1234567890123.45")
TENTHS = 600  # deals of 0.10, written in batches: revenue_daily adds them in SQL


def _won_lead(lead: str, amount: Decimal) -> list[Fact]:
    hour = timedelta(hours=1)
    money = {"opportunity_id": f"o-{lead}", "amount": str(amount), "currency": "EUR"}
    bodies = [
        ("lead.created", WON_AT, {"source": "web", "campaign_id": "c1"}),
        ("lead.mql", WON_AT + hour, {}),
        ("opportunity.created", WON_AT + 2 * hour, money),
        ("deal.won", WON_AT + 3 * hour, money),
    ]
    facts = []
    for n, (kind, at, fields) in enumerate(bodies):
        body = {"event_id": f"{lead}#{n}", "event_type": kind, "lead_id": lead,
                "occurred_at": at.isoformat(), **fields}  # fmt: skip
        topic = "sales" if kind.startswith(("opportunity", "deal")) else "marketing"
        event = classify(json.dumps(body).encode(), topic, NOW)
        assert isinstance(event, BaseEvent), event
        facts.append(Fact.from_event(event))
    return facts


def _snapshot(lead: str, amount: Decimal) -> LeadSnapshot:
    """The lead's snapshot with its events, as the batch agent hands it to the sink."""
    facts = _won_lead(lead, amount)
    events = [event_row(lead, fact) for fact in sorted(facts)]
    return replace(fold(lead, facts, CONFIG, NOW), events=events)


def _write(url: str, amounts: dict[str, Decimal], batch: int = 40) -> None:
    engine = make_engine(url)
    try:
        sink = SqlSink(engine)
        leads = sorted(amounts)
        for start in range(0, len(leads), batch):
            snaps = [_snapshot(lead, amounts[lead]) for lead in leads[start:][:batch]]
            sink.write_batch(snaps, [], NOW)
    finally:
        engine.dispose()


def _amounts() -> dict[str, Decimal]:
    tenths = {f"t{i:04d}": Decimal("0.10") for i in range(TENTHS)}
    return {"big": BIG, "seven": Decimal("0.07"), **tenths}


EXPECTED = BIG + Decimal("0.07") + TENTHS * Decimal("0.10")


def leadflow(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEADFLOW_DATABASE_URL": url, "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "leadflow", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=90,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    _write(url, _amounts())
    return url


def test_units_round_trip_exactly() -> None:
    for text_value, scale in [("0.07", 2), (str(BIG), 2), ("0.1234567891", 10), ("-5.5", 2)]:
        value = Decimal(text_value)
        assert from_units(to_units(value, scale), scale) == value
    assert to_units(Decimal("0.005"), 2) == 1  # half away from zero, as NUMERIC rounds
    assert to_units(Decimal("-0.005"), 2) == -1
    with pytest.raises(ValueError):
        to_units(Decimal("1e17"), 2)


def test_every_numeric_column_is_exact_and_migrated() -> None:
    path = Path(MIGRATIONS / "versions" / "0011_exact_sqlite_numbers.py")
    spec = importlib.util.spec_from_file_location("migration_0011", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    exact = {
        (name, column.name, column.type.scale)
        for name, table in TABLES.items()
        for column in table.columns
        if isinstance(column.type, ExactNumeric)
    }
    assert exact == set(migration.EXACT_COLUMNS)
    inexact = [
        f"{name}.{column.name}"
        for name, table in TABLES.items()
        for column in table.columns
        if column.type.python_type is Decimal and not isinstance(column.type, ExactNumeric)
    ]
    assert inexact == []


def test_the_store_holds_integer_cents_and_sums_them_exactly(store: str) -> None:
    engine = make_engine(store)
    try:
        with engine.connect() as conn:
            kinds = conn.execute(text("SELECT DISTINCT typeof(amount) FROM lead_lifecycle"))
            assert kinds.scalars().all() == ["integer"]
            raw = conn.execute(text("SELECT amount FROM lead_lifecycle WHERE lead_id = 'big'"))
            assert raw.scalar() == 123456789012345
            read = select(LIFECYCLE.c.amount).where(LIFECYCLE.c.lead_id.in_(["big", "seven"]))
            assert sorted(conn.execute(read).scalars()) == [Decimal("0.07"), BIG]
            won = conn.execute(select(REVENUE.c.won_amount)).scalars().all()
            assert won == [EXPECTED]  # one day, source, campaign and currency
            events = conn.execute(text("SELECT SUM(amount), typeof(SUM(amount)) FROM lead_events"))
            assert tuple(events.one()) == (2 * int(EXPECTED * 100), "integer")
    finally:
        engine.dispose()


def test_report_goals_and_dashboard_show_exact_amounts(store: str) -> None:
    period = ("--period", "2026-Q1", "--metric", "won_revenue", "--currency", "EUR")
    assert leadflow(store, "goals", "set", *period, "--target", str(BIG)).returncode == 0
    report = json.loads(leadflow(store, "report", "--format", "json").stdout)
    assert Decimal(report["revenue"]["EUR"]["won_amount"]) == EXPECTED
    goal = report["goals"][0]
    assert (Decimal(goal["target"]), Decimal(goal["actual"])) == (BIG, EXPECTED)
    csv_text = leadflow(store, "report", "--format", "csv").stdout
    assert str(EXPECTED) in csv_text
    table = leadflow(store, "report", "--full").stdout
    assert f"{EXPECTED:,}" in table or str(EXPECTED) in table
    engine = make_engine(store)
    try:
        page = render_report_html(build_report(engine), now=NOW)
    finally:
        engine.dispose()
    assert f"{EXPECTED:,.2f}" in page


def test_fx_rates_and_targets_keep_every_decimal(store: str, tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("currency,day,rate\nUSD,2026-01-01,0.1234567891\nGBP,2026-01-01,99999999\n")
    assert leadflow(store, "fx", "load", str(rates), "--to", "EUR").returncode == 0
    too_big = tmp_path / "big.csv"
    too_big.write_text("currency,day,rate\nUSD,2026-01-02,100000000\n")
    refused = leadflow(store, "fx", "load", str(too_big), "--to", "EUR")
    assert refused.returncode != 0 and "below 100,000,000" in refused.stderr
    goal = ("--period", "2026", "--metric", "won_revenue", "--currency", "EUR", "--target", "0.07")
    assert leadflow(store, "goals", "set", *goal).returncode == 0
    engine = make_engine(store)
    try:
        with engine.connect() as conn:
            got = dict(conn.execute(select(FX_RATES.c.currency, FX_RATES.c.rate)).all())
            target = conn.execute(text("SELECT target FROM shared_goals")).scalar()
    finally:
        engine.dispose()
    assert got == {"USD": Decimal("0.1234567891"), "GBP": Decimal("99999999")}
    assert target == 7


def test_migration_0011_converts_stored_doubles(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0009")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(_OLD_ROWS))
        command.upgrade(alembic_config(url), "head")
        with engine.connect() as conn:
            raw = conn.execute(text("SELECT amount, typeof(amount) FROM lead_events")).all()
            read = conn.execute(select(TABLES["lead_events"].c.amount)).scalars().all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in raw] == [(123456789012345, "integer"), (7, "integer")]
    assert sorted(read) == [Decimal("0.07"), BIG]


_OLD_ROWS = (
    "INSERT INTO lead_events (event_id, lead_id, event_type, occurred_at, amount, currency,"
    " received_at) VALUES"
    " ('e1', 'l1', 'deal.won', '2026-03-02 09:00:00.000000', 1234567890123.45, 'EUR',"
    "  '2026-03-02 09:00:00.000000'),"
    " ('e2', 'l2', 'deal.won', '2026-03-02 09:00:00.000000', 0.07, 'EUR',"
    "  '2026-03-02 09:00:00.000000')"
)
