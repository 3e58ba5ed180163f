"""One reporting currency: `leadflow fx load`, and won revenue converted or shown apart (item 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from leadflow.sinks import make_engine
from leadflow.sinks.models import FX_RATES, LIFECYCLE
from tests.support.demo_store import write_demo_store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    write_demo_store(url, leads=600)
    return url


def leadflow(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadflow", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "LEADFLOW_DATABASE_URL": url},
        cwd=REPO,
        timeout=90,
    )


def _won(url: str) -> list[tuple[str, Decimal, object]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            lc = LIFECYCLE.c
            query = select(lc.currency, lc.amount, lc.won_at).where(lc.stage == "won")
            return [(c, Decimal(str(a)), w.date()) for c, a, w in conn.execute(query)]
    finally:
        engine.dispose()


def test_revenue_converts_at_the_latest_rate_on_or_before_the_win(
    store: str, tmp_path: Path
) -> None:
    won = _won(store)
    usd_days = sorted(day for c, _, day in won if c == "USD")
    assert len(usd_days) >= 2
    middle = usd_days[len(usd_days) // 2]
    rates = tmp_path / "rates.csv"
    rates.write_text(
        f"currency,day,rate\nUSD,2000-01-01,0.9\nUSD,{middle},0.8\nGBP,2000-01-01,1.2\n"
    )
    done = leadflow(store, "fx", "load", str(rates), "--to", "EUR")
    assert done.returncode == 0, done.stderr
    assert "loaded 3 rates into EUR" in done.stdout
    report = leadflow(store, "report", "--format", "json")
    assert report.returncode == 0, report.stderr
    converted = json.loads(report.stdout)["revenue_converted"]
    rate = {"EUR": Decimal(1), "GBP": Decimal("1.2")}
    total, apart = Decimal(0), Decimal(0)
    for currency, amount, day in won:
        if currency == "USD":
            total += amount * (Decimal("0.8") if day >= middle else Decimal("0.9"))
        elif currency in rate:
            total += amount * rate[currency]
        else:
            apart += amount
    assert converted["currency"] == "EUR"
    assert Decimal(converted["won_amount"]) == total.quantize(Decimal("0.01"))
    assert Decimal(converted["without_rate"]["BRL"]) == apart.quantize(Decimal("0.01"))
    table = leadflow(store, "report")
    assert "Won revenue in EUR" in table.stdout and "without a rate, not converted" in table.stdout
    csv = leadflow(store, "report", "--format", "csv").stdout
    assert f"revenue_converted,EUR,won_amount,{converted['won_amount']}" in csv


@pytest.mark.parametrize(
    "content",
    [
        "currency,day,rate\nUSD,2026-01-01,0.9\nusd,2026-01-02,0.9\n",
        "currency,day,rate\nUSD,2026-02-30,0.9\n",
        "currency,day,rate\nUSD,2026-01-01,-1\n",
        "currency,day,rate\nUSD,2026-01-01,nan\n",
        "cur,day,rate\nUSD,2026-01-01,0.9\n",
        "currency,day,rate\nUSD,2026-01-01\n",
    ],
)
def test_a_bad_line_loads_nothing(store: str, tmp_path: Path, content: str) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text(content)
    done = leadflow(store, "fx", "load", str(rates), "--to", "EUR")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    engine = make_engine(store)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(FX_RATES)).all() == []
    finally:
        engine.dispose()
    report = json.loads(leadflow(store, "report", "--format", "json").stdout)
    assert report["revenue_converted"] is None  # no rates: nothing is converted


def test_one_reporting_currency_per_store(store: str, tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("currency,day,rate\nUSD,2026-01-01,0.9\n")
    assert leadflow(store, "fx", "load", str(rates), "--to", "EUR").returncode == 0
    other = leadflow(store, "fx", "load", str(rates), "--to", "GBP")
    assert other.returncode == 1 and "one reporting currency per store" in other.stderr
