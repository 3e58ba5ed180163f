"""Hostile strings in every free-text field leave every output inert (issue 20, item 5)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from leadflow.pipeline.dashboard.pages import render_page
from leadflow.pipeline.reporting import run_report
from leadflow.pipeline.reporting.formats import render_table
from leadflow.pipeline.reporting.model import ReportQuery
from leadflow.pipeline.reporting.queries import build_report
from leadflow.pipeline.reporting.safe import FORMULA_STARTS, csv_cell, printable
from leadflow.sinks import make_engine
from tests.support.hostile import PAYLOADS, write_hostile_store

REPO = Path(__file__).resolve().parents[1]
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'store.db'}"
    write_hostile_store(url)
    return url


def _report(url: str, fmt: str, query: ReportQuery | None = None) -> str:
    out = io.StringIO()
    assert run_report(url, fmt, out, query or ReportQuery(details=True)) == 0
    return out.getvalue()


@pytest.mark.parametrize("full", [False, True])
def test_the_table_prints_payloads_literally(store: str, full: bool) -> None:
    engine = make_engine(store)
    try:
        report = build_report(engine, ReportQuery(by="owner", details=True))
    finally:
        engine.dispose()
    console = Console(record=True, width=250, force_terminal=True, color_system="truecolor")
    render_table(report, console, full=full)
    shown = console.export_text()
    every = ("[/bold]", "[red]x", ":smile:", SCRIPT)
    for payload in every if full else ("[red]x", SCRIPT):  # the compact table: top rows only
        assert payload in shown, payload
    assert "\N{SMILING FACE WITH SMILING EYES}" not in shown and "😄" not in shown
    assert "\x1b[31m" not in console.export_text(styles=True)  # [red] is not a style


def test_the_cli_table_prints_payloads_literally(store: str) -> None:
    env = {**os.environ, "LEADFLOW_DATABASE_URL": store, "COLUMNS": "250"}
    for args in (["--by", "campaign"], ["--full", "--by", "owner"]):
        done = subprocess.run(
            [sys.executable, "-m", "leadflow", "report", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "[red]x" in done.stdout and SCRIPT in done.stdout
        assert "[/bold]" in done.stdout or "--full" not in args


def test_no_csv_cell_is_a_formula(store: str) -> None:
    for by in ("source", "campaign", "owner"):
        rows = list(
            csv.reader(io.StringIO(_report(store, "csv", ReportQuery(by=by, details=True))))
        )
        cells = [cell for row in rows for cell in row]
        risky = [c for c in cells if c.startswith(FORMULA_STARTS) and c != csv_cell(c)]
        assert not risky
        for payload in ('=HYPERLINK("http://x")', "+1+1", "@SUM(A1)", "-2+3"):
            assert "'" + payload in cells, payload
            assert payload not in cells


def test_csv_cell_rules() -> None:
    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell("\tx") == "'\tx" and csv_cell("\rx") == "'\rx"
    assert csv_cell("-1.5") == "-1.5"  # a number, not a formula
    assert csv_cell("-A1") == "'-A1"
    assert csv_cell("paid_search") == "paid_search"
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"


def test_json_keeps_every_string_exact(store: str) -> None:
    data = json.loads(_report(store, "json", ReportQuery(by="campaign", details=True)))
    assert set(PAYLOADS) <= set(data["funnel_by_source"])
    assert set(PAYLOADS) <= set(data["funnel_by_campaign"])
    assert set(PAYLOADS) <= set(data["sla_by_owner"])


def test_html_report_escapes_every_payload(store: str) -> None:
    page = _report(store, "html", ReportQuery(by="owner", details=True))
    assert SCRIPT not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("field", ["lead", "source", "campaign"])
def test_dashboard_escapes_every_payload(store: str, field: str) -> None:
    engine = make_engine(store)
    try:
        for payload in PAYLOADS:
            status, page = render_page(engine, {field: payload, "by": "owner"})
            assert status == 200, (field, payload)
            assert SCRIPT not in page and "<img src=x" not in page
    finally:
        engine.dispose()


def test_dashboard_lead_lookup_shows_the_hostile_lead(store: str) -> None:
    engine = make_engine(store)
    try:
        status, page = render_page(engine, {"lead": SCRIPT})
    finally:
        engine.dispose()
    assert status == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and SCRIPT not in page


def test_dashboard_out_of_range_dates_are_a_400_page(store: str) -> None:
    engine = make_engine(store)
    try:
        for params in ({"until": "9999-12-31"}, {"since": "0001-01-01"}, {"since": "soon"}):
            status, page = render_page(engine, params)
            assert status == 400, params
            assert "Ignored" in page
    finally:
        engine.dispose()
