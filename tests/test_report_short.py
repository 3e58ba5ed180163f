"""The default table fits two screens for the 5,000-lead demo (issue 20, item 3)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from leadflow.pipeline.reporting import run_report
from leadflow.pipeline.reporting.formats import TOP_N, render_table
from leadflow.pipeline.reporting.model import ReportQuery
from leadflow.pipeline.reporting.queries import build_report
from leadflow.sinks import make_engine
from leadflow.sinks.goals import make_goal, set_goal
from tests.support.demo_store import write_demo_store

MAX_LINES = 80


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    write_demo_store(url)
    engine = make_engine(url)
    try:
        set_goal(engine, make_goal("2026-Q2", "won_revenue", "250000", "EUR"))
        set_goal(engine, make_goal("2026", "mqls", "3000", None))
        set_goal(engine, make_goal("2026", "won_deals", "400", None))
    finally:
        engine.dispose()
    return url


def _table(url: str, *, full: bool, by: str = "source") -> str:
    engine = make_engine(url)
    try:
        report = build_report(engine, ReportQuery(by=by, details=True))
    finally:
        engine.dispose()
    out = io.StringIO()
    render_table(report, Console(file=out, width=100, color_system=None), full=full)
    return out.getvalue()


@pytest.mark.parametrize("by", ["source", "campaign", "owner"])
def test_the_default_table_fits_80_lines_at_100_columns(demo_url: str, by: str) -> None:
    text = _table(demo_url, full=False, by=by)
    lines = text.splitlines()
    assert len(lines) <= MAX_LINES, len(lines)
    assert max(len(line) for line in lines) <= 100
    for title in (
        "Headline",
        "Funnel: distinct leads",
        "handoff SLA",
        "Won revenue",
        "Shared goals",
        f"(top {TOP_N} of",
    ):
        assert title in text, title
    assert "--full" in lines[-1]


def test_the_default_table_has_the_headline_figures(demo_url: str) -> None:
    engine = make_engine(demo_url)
    try:
        report = build_report(engine, ReportQuery(details=True))
    finally:
        engine.dispose()
    text = _table(demo_url, full=False)
    assert f"{report.funnel.stages['lead']:,}" in text
    assert f"{report.funnel.stages['mql']:,}" in text
    for currency, revenue in report.revenue.items():
        assert f"{revenue.won_amount:,}" in text and currency in text
    assert "Top 5 rows per breakdown" in text


def test_full_and_the_other_formats_keep_every_row(demo_url: str) -> None:
    full = _table(demo_url, full=True)
    assert len(full.splitlines()) > MAX_LINES
    out = io.StringIO()
    run_report(demo_url, "json", out, ReportQuery(details=True))
    data = json.loads(out.getvalue())
    owners = data["sla_by_owner"]
    assert len(owners) > TOP_N
    assert all(owner in full for owner in owners)
    assert all(campaign in full for campaign in data["rejections_by_campaign"])


def test_count_goals_are_whole_numbers(demo_url: str) -> None:
    text = _table(demo_url, full=False)
    goals = text.split("Shared goals")[1].split("\n\n")[0]
    assert "3,000" in goals and "3,000.00" not in goals and "400.00" not in goals
    assert "250,000.00" in goals


def test_the_html_report_keeps_every_row(demo_url: str) -> None:
    out = io.StringIO()
    run_report(demo_url, "html", out, ReportQuery(details=True))
    page = out.getvalue()
    json_out = io.StringIO()
    run_report(demo_url, "json", json_out, ReportQuery(details=True))
    data = json.loads(json_out.getvalue())
    rows = sum(len(reasons) for reasons in data["rejections_by_campaign"].values())
    all_rows = page.split('data-table="rejections-all"', 1)[1].split("</table>", 1)[0]
    assert all_rows.count("<tr>") == rows + 1  # and the header
    for owner in data["sla_by_owner"]:
        assert f'data-metric="sla_rate.{owner}"' in page
    for line in data["attribution"]:
        assert f'data-metric="attribution.{line["campaign_id"]}.{line["model"]}"' in page


def test_the_html_report_opens_with_the_dashboards_headline_and_trends(demo_url: str) -> None:
    out = io.StringIO()
    run_report(demo_url, "html", out, ReportQuery(details=True))
    page = out.getvalue()
    json_out = io.StringIO()
    run_report(demo_url, "json", json_out, ReportQuery(details=True))
    funnel = json.loads(json_out.getvalue())["funnel"]["stages"]
    assert "Are we on track?" in page
    assert page.index('id="glance"') < page.index("Funnel per week")
    assert "MQL-week cohorts" in page
    # The headline funnel of the glance covers the last 30 days with data: never more leads
    # than the whole report's.
    glance_leads = page.split('data-metric="glance.funnel.lead">', 1)[1].split("<", 1)[0]
    assert 0 < int(glance_leads.replace(",", "")) <= funnel["lead"]
