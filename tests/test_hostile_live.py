"""Hostile strings through Kafka and a live worker: every report format and the worker's
/dashboard print them literally and inertly (issue 20)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import select

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.reporting.safe import FORMULA_STARTS, csv_cell
from leadflow.schemas.vocabulary import topic_kind_of
from leadflow.sinks import make_engine
from leadflow.sinks.models import EVENTS
from tests.support.fixtures import WorkerFactory
from tests.support.hostile import PAYLOADS, journey
from tests.support.traffic import publish

pytestmark = [pytest.mark.broker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = "<script>alert(1)</script>"
FORMULAS = ('=HYPERLINK("http://x")', "+1+1", "@SUM(A1)", "-2+3")
MARKUP = ("[/bold]", "[red]x")


def _bodies() -> list[dict[str, Any]]:
    """Each payload's journey, with the payload as source_system and channel too."""
    bodies = []
    for index, payload in enumerate(PAYLOADS):
        for body in journey(payload, index):
            extra = (
                {"channel": payload}
                if body["event_type"] in ("lead.touch", "lead.contacted")
                else {}
            )
            bodies.append({**body, "source_system": payload, **extra})
    return bodies


def _messages(bodies: list[dict[str, Any]]) -> list[tuple[str, bytes | None, bytes]]:
    return [
        (topic_kind_of(b["event_type"]), b["lead_id"].encode(), json.dumps(b).encode())
        for b in bodies
    ]


def _report(url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "leadflow", "report", *args],
        capture_output=True, text=True, cwd=REPO, timeout=90,
        env={**os.environ, "LEADFLOW_DATABASE_URL": url, "COLUMNS": "100"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _get(base: str, params: dict[str, str]) -> str:
    url = f"{base}/dashboard?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        body: bytes = response.read()
    return body.decode()


@pytest.fixture
def live_store(broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory) -> Any:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    worker = start_worker(url)
    bodies = _bodies()
    publish(broker, url, _messages(bodies))
    worker.wait_processed(len(bodies), timeout=90)
    return url, worker, bodies


def test_events_are_stored_verbatim(live_store: Any) -> None:
    url, _, bodies = live_store
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            e = EVENTS.c
            query = select(e.event_type, e.lead_id, e.source_system, e.channel, e.opportunity_id)
            rows = [tuple(r) for r in conn.execute(query)]
    finally:
        engine.dispose()
    assert len(rows) == len(bodies)  # every event accepted: none was a dead letter
    for index, payload in enumerate(PAYLOADS):
        assert ("lead.touch", payload, payload, payload, None) in rows
        won = ("deal.won", payload, payload, None, payload)
        assert (won in rows) == (index % 2 == 0), payload


def test_every_report_format_is_inert(live_store: Any) -> None:
    url, _, _ = live_store
    for args in (["--by", "owner"], ["--full", "--by", "owner"], ["--full", "--by", "campaign"]):
        table = _report(url, *args)
        assert "\x1b" not in table
        assert "[red]x" in table, args
    full = _report(url, "--full", "--by", "owner")
    assert all(payload in full for payload in (*MARKUP, "+1+1", "-2+3", "@SUM(A1)")), full
    data = json.loads(_report(url, "--format", "json", "--by", "owner"))
    for section in ("funnel_by_source", "sla_by_owner"):
        assert set(PAYLOADS) <= set(data[section]), section
    cells = [c for row in csv.reader(io.StringIO(_report(url, "--format", "csv"))) for c in row]
    assert not [c for c in cells if c.startswith(FORMULA_STARTS) and c != csv_cell(c)]
    for payload in FORMULAS:
        assert "'" + payload in cells and payload not in cells, payload
    assert set(MARKUP) | {SCRIPT} <= set(cells)
    page = _report(url, "--format", "html", "--by", "owner")
    assert SCRIPT not in page and "<img src=x" not in page
    assert str(escape(SCRIPT)) in page and "[red]x" in page


def test_the_worker_dashboard_escapes_and_shows_every_payload(live_store: Any) -> None:
    _, worker, _ = live_store
    page = _get(worker.base_url, {"by": "owner"})
    assert SCRIPT not in page and "<img src=x" not in page
    for payload in PAYLOADS:
        assert str(escape(payload)) in page, payload
    for payload in (SCRIPT, '=HYPERLINK("http://x")', "[/bold]"):
        lead = _get(worker.base_url, {"lead": payload})
        assert SCRIPT not in lead and "<img src=x" not in lead
        assert str(escape(payload)) in lead, payload
        assert "no lead" not in lead.lower(), payload
