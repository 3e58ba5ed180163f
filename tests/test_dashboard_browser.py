"""The dashboard in a real headless Chromium, after the golden scenarios went through a worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.reporting.model import ReportQuery
from leadflow.sinks import make_engine
from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, dashboard_process
from tests.support.fixtures import WorkerFactory, unavailable
from tests.support.stores import expected_stages
from tests.support.traffic import SCENARIO_MESSAGES, publish, scenario_messages

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]
STAGES = ("lead", "mql", "sal", "sql", "won", "lost", "recycled", "disqualified")


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("PLAYWRIGHT NOT INSTALLED (pip install playwright)")
    if not Path(CHROMIUM).exists():
        unavailable(f"NO CHROMIUM at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def golden_store(
    tmp_path: Path, broker: EmbeddedBroker, start_worker: WorkerFactory
) -> Iterator[tuple[str, str]]:
    """A SQLite store filled by a real worker from the golden scenarios; (url, worker base URL)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    worker = start_worker(url)
    publish(broker, url, scenario_messages())
    worker.wait_processed(SCENARIO_MESSAGES, timeout=60)
    yield url, worker.base_url


@pytest.fixture
def dashboard_server(tmp_path: Path, golden_store: tuple[str, str]) -> Iterator[str]:
    """`leadflow dashboard` on the golden store, as a subprocess; its /dashboard URL."""
    url, _ = golden_store
    with dashboard_process(url, tmp_path / "dashboard.log", 30) as dashboard:
        yield dashboard


def page_stages(page: Any) -> dict[str, int]:
    return {
        stage: int(page.locator(f'[data-metric="funnel.{stage}"]').inner_text()) for stage in STAGES
    }


def nonzero(stages: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in stages.items() if v}


def check_dashboard(browser: Any, base: str, store_url: str, shot: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base, timeout=30_000)
    page.wait_for_function("typeof Chart !== 'undefined' && Chart.instances !== undefined")
    charts = page.evaluate("Object.keys(Chart.instances).length")
    assert charts >= 5, "the charts were not drawn"
    engine = make_engine(store_url)
    try:
        # The numbers on the page are the store's.
        shown = page_stages(page)
        assert nonzero(shown) == expected_stages(engine, ReportQuery())
        assert shown["lead"] == 11 and shown["won"] == 4
        assert page.locator('[data-metric="sla.breached"]').inner_text() == "3"
        assert page.locator('[data-metric="attribution.C-spring.w_shaped"]').inner_text() == "0.65"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)

        # A filter changes them, to the store's filtered numbers.
        page.select_option('select[name="source"]', "paid_search")
        page.click("#apply-filters")
        page.wait_for_url("**source=paid_search**")
        filtered = page_stages(page)
        assert filtered != shown
        assert nonzero(filtered) == expected_stages(engine, ReportQuery(source="paid_search"))
        page.fill('input[name="since"]', "2026-03-03")
        page.click("#apply-filters")
        page.wait_for_url("**since=2026-03-03**")
        assert nonzero(page_stages(page)) == expected_stages(
            engine, ReportQuery(source="paid_search", since=date(2026, 3, 3))
        )
    finally:
        engine.dispose()

    # The lead lookup shows scenario 04's two cycles.
    page.goto(base, timeout=30_000)
    page.fill("#lead-input", "L-4")
    page.click("#lookup")
    page.wait_for_selector('table.timeline[data-cycle="2"]')
    first = page.locator('table.timeline[data-cycle="1"] tbody tr')
    second = page.locator('table.timeline[data-cycle="2"] tbody tr')
    assert [first.nth(i).get_attribute("data-stage") for i in range(first.count())] == [
        "lead",
        "mql",
        "recycled",
    ]
    assert [second.nth(i).get_attribute("data-stage") for i in range(second.count())] == [
        "mql",
        "sal",
        "sql",
        "lost",
    ]
    assert page.locator('[data-metric="lead.stage"]').inner_text() == "lost"
    page.screenshot(path=str(ARTIFACTS / f"{shot}-lead-L-4.png"), full_page=True)

    # Inferred transitions are marked (scenario 03 skips stages).
    page.goto(base + "/lead/L-3", timeout=30_000)
    assert page.locator("tr.inferred .badge").count() >= 1

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(base, timeout=30_000)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways on a phone ({width}px)"
    phone.screenshot(path=str(ARTIFACTS / f"{shot}-phone.png"), full_page=False)
    assert errors == [], errors


def test_dashboard_command_in_a_browser(
    browser: Any, golden_store: tuple[str, str], dashboard_server: str
) -> None:
    check_dashboard(browser, dashboard_server, golden_store[0], "dashboard")


def test_worker_dashboard_in_a_browser(browser: Any, golden_store: tuple[str, str]) -> None:
    url, worker_base = golden_store
    check_dashboard(browser, worker_base + "/dashboard", url, "worker-dashboard")
