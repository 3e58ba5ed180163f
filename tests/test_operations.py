"""Operations: a real Prometheus scraping a real worker, and the SLA clock without events."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadflow.pipeline.kafka.broker import EmbeddedBroker, free_port
from leadflow.sinks import make_engine
from tests.support.fixtures import WorkerFactory, unavailable
from tests.support.golden import load_scenarios
from tests.support.queries import read_lead, read_sla
from tests.support.traffic import BAD, publish, scenario_messages

pytestmark = [pytest.mark.broker, pytest.mark.slow]
SCENARIOS = load_scenarios()


class Prometheus:
    """A Prometheus server of the test's own, scraping one target every second."""

    def __init__(self, workdir: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            unavailable("NO PROMETHEUS SERVER (Debian package `prometheus`; make test-tools)")
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: leadflow\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        try:
            result = self.query(expr)
        except OSError:
            return None
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, expected: float, timeout: float = 30) -> float | None:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.value(expr)
            if value == expected:
                return value
            time.sleep(0.5)
        return value

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        server = Prometheus(tmp_path, target)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def expected_counts() -> tuple[Counter[str], int]:
    """Stage entries and breached SLAs the golden scenarios must produce (each lead once)."""
    entries: Counter[str] = Counter()
    breached = 0
    seen = set()
    for scenario in SCENARIOS:
        if scenario.lead_id in seen:
            continue
        seen.add(scenario.lead_id)
        entries.update(t["stage"] for t in scenario.expected["lead_stage_transitions"])
        breached += sum(1 for s in scenario.expected["handoff_sla"] if s["status"] == "breached")
    return entries, breached


def test_prometheus_scrapes_the_expected_counts(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory, prometheus_factory: Any
) -> None:
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    worker = start_worker(database_url)
    prometheus = prometheus_factory(f"127.0.0.1:{worker.settings.web_port}")
    messages = scenario_messages() + [(topic, b"B", raw) for topic, raw, _ in BAD]
    publish(broker, database_url, messages)
    worker.wait_processed(len(messages), timeout=60)

    total = prometheus.wait_for("sum(leadflow_events_total)", float(len(messages)))
    assert total == len(messages)
    duplicates = (
        len(messages)
        - len(BAD)
        - len({json.loads(v)["event_id"] for _, _, v in scenario_messages()})
    )
    assert prometheus.value('sum(leadflow_events_total{outcome="duplicate"})') == duplicates
    for reason, count in Counter(reason for _, _, reason in BAD).items():
        got = prometheus.value(f'leadflow_dead_letters_total{{reason="{reason}"}}')
        assert got == count, reason
    entries, breached = expected_counts()
    for stage, count in entries.items():
        got = prometheus.value(f'leadflow_stage_entries_total{{stage="{stage}"}}')
        assert got == count, stage
    # Every final breach is counted; a historical MQL folded before its (on-time) response
    # arrives is breached for that moment by the wall clock, and a counter cannot take it back.
    breaches = prometheus.value("leadflow_sla_breaches_total")
    sla_rows = sum(
        len(s.expected["handoff_sla"])
        for s in SCENARIOS
        if s.name != "02_out_of_order_and_duplicates"
    )
    assert breaches is not None and breached <= breaches <= sla_rows
    assert prometheus.value("sum(leadflow_leads)") == len({s.lead_id for s in SCENARIOS})
    assert prometheus.value('leadflow_leads{stage="won"}') == 4
    assert prometheus.value("leadflow_orphan_leads") == 1
    assert prometheus.value('leadflow_won_amount_total{currency="EUR"}') == 15100
    assert prometheus.value("leadflow_sink_write_seconds_count") is not None
    assert prometheus.value('up{job="leadflow"}') == 1
    received = prometheus.value("faust_messages_received_total")  # Faust's own sensors
    assert received is not None and received >= len(messages)


def test_sla_clock_breaches_a_pending_sla_without_any_event(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    sla_seconds = 6.0
    worker = start_worker(database_url, LEADFLOW_SLA_HOURS=str(sla_seconds / 3600))
    mql_at = datetime.now(UTC) - timedelta(seconds=1)
    events = [
        ("marketing", {"event_type": "lead.created", "source": "web"}, mql_at - timedelta(hours=1)),
        ("marketing", {"event_type": "lead.mql"}, mql_at),
    ]
    messages = [
        (
            topic,
            b"T-1",
            json.dumps(
                {"event_id": f"t{i}", "lead_id": "T-1", "occurred_at": at.isoformat(), **body}
            ).encode(),
        )
        for i, (topic, body, at) in enumerate(events)
    ]
    publish(broker, database_url, messages)
    worker.wait_processed(2, timeout=30)
    engine = make_engine(database_url)
    try:
        first = read_lead(engine, "T-1")
        assert first is not None and first["sla_status"] == "pending", first
        assert worker.metric("leadflow_sla_pending") == 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = read_lead(engine, "T-1")
            if row is not None and row["sla_status"] == "breached":
                break
            time.sleep(0.5)
        row = read_lead(engine, "T-1")
        assert row is not None and row["sla_status"] == "breached", row
        assert row["version"] == first["version"] + 1
        assert [s["status"] for s in read_sla(engine, "T-1")] == ["breached"]
    finally:
        engine.dispose()
    assert worker.metric("leadflow_sla_breaches_total") == 1
    assert worker.metric("leadflow_sla_pending") == 0


def test_gauges_of_two_workers_add_up_to_each_lead_once(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    first = start_worker(database_url)
    second = start_worker(database_url)

    def both_own_partitions() -> bool:
        owned = [w.metric("leadflow_leads") for w in (first, second)]
        return all(value is not None for value in owned)

    messages = scenario_messages()
    deadline = time.monotonic() + 60
    while not both_own_partitions() and time.monotonic() < deadline:
        time.sleep(0.5)
    publish(broker, database_url, messages)
    leads = len({s.lead_id for s in SCENARIOS})
    deadline = time.monotonic() + 60
    totals: list[float] = []
    while time.monotonic() < deadline:
        processed = sum(w.processed() for w in (first, second))
        totals = [w.metric("leadflow_leads") or 0.0 for w in (first, second)]
        if processed >= len(messages) and sum(totals) == leads:
            break
        time.sleep(0.5)
    # Each worker counts only the leads of the partitions it owns: together, each lead once.
    assert sum(totals) == leads, totals
    assert all(total < leads for total in totals), "one worker counted every lead"
