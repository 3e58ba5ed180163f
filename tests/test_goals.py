"""Shared goals: periods, validation, the report and the worker's gauge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.schemas.errors import LeadflowError
from leadflow.sinks.goals import make_goal, parse_period
from tests.support.fixtures import WorkerFactory
from tests.support.traffic import SCENARIO_MESSAGES, publish, scenario_messages


def test_periods() -> None:
    assert parse_period("2026-Q4") == (date(2026, 10, 1), date(2027, 1, 1))
    assert parse_period("2026-11") == (date(2026, 11, 1), date(2026, 12, 1))
    assert parse_period("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    assert parse_period("2026") == (date(2026, 1, 1), date(2027, 1, 1))
    for bad in ("2026-Q5", "2026-13", "26-Q1", "Q4"):
        with pytest.raises(LeadflowError):
            parse_period(bad)


def test_goal_validation() -> None:
    assert make_goal("2026-Q1", "won_revenue", "100", "eur").currency == "EUR"
    with pytest.raises(LeadflowError, match="currency"):
        make_goal("2026-Q1", "won_revenue", "100", None)
    with pytest.raises(LeadflowError, match="metric"):
        make_goal("2026-Q1", "revenue", "100", None)
    with pytest.raises(LeadflowError, match="target"):
        make_goal("2026-Q1", "mqls", "-3", None)


def run_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadflow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LEADFLOW_DATABASE_URL": database_url, "COLUMNS": "200"},
        check=False,
    )


@pytest.mark.broker
@pytest.mark.slow
def test_goal_progress_in_report_and_gauge(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    # Golden scenarios: EUR won in 2026 = 100 (L-11, March) + 15000 (L-1, April).
    for args in (
        (
            "goals",
            "set",
            "--period",
            "2026",
            "--metric",
            "won_revenue",
            "--currency",
            "EUR",
            "--target",
            "30200",
        ),
        ("goals", "set", "--period", "2026-03", "--metric", "won_deals", "--target", "4"),
    ):
        done = run_cli(*args, database_url=database_url)
        assert done.returncode == 0, done.stderr
    worker = start_worker(database_url, LEADFLOW_GOALS_REFRESH_SECONDS="0.5")
    publish(broker, database_url, scenario_messages())
    worker.wait_processed(SCENARIO_MESSAGES, timeout=60)

    done = run_cli("report", "--format", "json", database_url=database_url)
    assert done.returncode == 0, done.stderr
    goals = {(g["period"], g["metric"]): g for g in json.loads(done.stdout)["goals"]}
    revenue = goals["2026", "won_revenue"]
    assert Decimal(revenue["actual"]) == Decimal("15100.00")
    assert revenue["ratio"] == pytest.approx(0.5)
    deals = goals["2026-03", "won_deals"]  # L-11 won on 2026-03-03
    assert Decimal(deals["actual"]) == 1 and deals["ratio"] == pytest.approx(0.25)

    deadline = time.monotonic() + 20
    ratio = None
    while time.monotonic() < deadline:
        ratio = worker.metric("leadflow_goal_progress_ratio")
        if ratio is not None and abs(ratio - 0.75) < 1e-9:
            break
        time.sleep(0.5)
    assert ratio == pytest.approx(0.5 + 0.25)  # the sum of both goals' ratios
    listing = run_cli("goals", "list", database_url=database_url)
    assert listing.returncode == 0 and "won_revenue" in listing.stdout and "50.0%" in listing.stdout
