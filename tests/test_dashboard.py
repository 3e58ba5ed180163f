"""Dashboard pages without a browser: escaping, filters, errors, assets, and the Faust routes."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from leadflow.pipeline.dashboard.pages import parse_params, render_page
from leadflow.pipeline.dashboard.server import STATIC_FILES, register_pages, static_asset
from leadflow.pipeline.kafka.broker import free_port
from leadflow.sinks import make_engine, upgrade
from tests.support.stores import fill_store

EVIL = '<script>alert("x")</script>'


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    fill_store(url)
    return url


def test_filters_are_parsed_and_bad_ones_named() -> None:
    query, lead, errors = parse_params(
        {"since": "2026-03-01", "until": "2026-02-01", "source": " web ", "lead": "L-1"}
    )
    assert (query.since, query.until, query.source, lead) == (None, None, "web", "L-1")
    assert errors == ["Ignored the period: 'since' comes after 'until'."]
    query, _, errors = parse_params({"since": "yesterday", "by": "planet", "until": "2026-03-31"})
    assert query.until == date(2026, 3, 31) and query.since is None and query.by == "source"
    assert len(errors) == 2 and all(e.endswith(".") for e in errors)


def test_user_data_is_escaped(store: str) -> None:
    engine = make_engine(store)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE lead_lifecycle SET source = :evil, campaign_id = :evil"
                    " WHERE lead_id = 'L-1'"
                ),
                {"evil": EVIL},
            )
            conn.execute(
                text("UPDATE attribution SET campaign_id = :evil WHERE campaign_id = 'C-spring'"),
                {"evil": EVIL},
            )
        status, page = render_page(engine, {"lead": "L-1", "source": EVIL})
        assert status == 200
        assert EVIL not in page
        assert "&lt;script&gt;alert(" in page
        chart_data = page.split('id="chart-data">', 1)[1].split("</script>", 1)[0]
        assert "<" not in chart_data  # the chart JSON cannot close its script element
        status, page = render_page(engine, {"lead": EVIL})
        assert status == 404 and EVIL not in page
    finally:
        engine.dispose()


def test_a_missing_store_is_a_page_not_a_crash(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'none.db'}")
    try:
        status, page = render_page(engine, {})
    finally:
        engine.dispose()
    assert status == 503 and "leadflow db upgrade" in page
    assert not (tmp_path / "none.db").exists()


def test_only_our_own_assets_are_served() -> None:
    for name in STATIC_FILES:
        found = static_asset(name)
        assert found is not None and found[0]
    for name in ("../dashboard.py", "templates/dashboard.html", "chart.js.LICENSE.md", ""):
        assert static_asset(name) is None


def test_the_pages_in_a_faust_app(store: str) -> None:
    """register_pages on a real Faust app's web server (no broker needed for the web part)."""
    import faust

    port = free_port()
    app = faust.App(
        f"dashtest-{port}",
        broker="kafka://127.0.0.1:1",
        web_port=port,
        web_bind="127.0.0.1",
        web_in_thread=False,
    )
    engine = make_engine(store)
    register_pages(app, engine)

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""

    async def run() -> dict[str, tuple[int, str]]:
        await app.web.start()
        try:
            loop = asyncio.get_running_loop()
            paths = (
                "/dashboard?source=paid_search",
                "/dashboard/lead/L-4",
                "/dashboard/static/dashboard.js",
                "/dashboard/static/secret",
                "/dashboard?lead=nobody",
            )
            results = await asyncio.gather(*(loop.run_in_executor(None, get, p) for p in paths))
            return dict(zip(paths, results, strict=True))
        finally:
            await app.web.stop()

    try:
        got = asyncio.run(asyncio.wait_for(run(), 60))
    finally:
        engine.dispose()
    assert got["/dashboard?source=paid_search"][0] == 200
    assert 'data-metric="funnel.lead">2<' in got["/dashboard?source=paid_search"][1]
    status, page = got["/dashboard/lead/L-4"]
    assert status == 200 and 'data-cycle="2"' in page
    assert got["/dashboard/static/dashboard.js"][0] == 200
    assert got["/dashboard/static/secret"][0] == 404
    assert got["/dashboard?lead=nobody"][0] == 404


def test_render_is_pure_given_a_time(store: str) -> None:
    from leadflow.pipeline.dashboard.pages import load_dashboard, render_dashboard

    engine = make_engine(store)
    try:
        data = load_dashboard(engine, {"by": "owner"})
    finally:
        engine.dispose()
    moment = datetime(2026, 6, 1, tzinfo=UTC)
    assert render_dashboard(data, now=moment) == render_dashboard(data, now=moment)
    assert "Funnel by owner" in render_dashboard(data, now=moment)
