"""SLA policies end to end: a worker with a two-calendar policy file equals the pure fold."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadflow.agents.fold import FoldConfig
from leadflow.agents.sla.policies import load_policies
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from tests.support.faults import (
    assert_store_equals,
    expected_of,
    publish_positions,
    wait_store,
)
from tests.support.fixtures import WorkerFactory
from tests.support.sla import POLICY_FILE
from tests.support.traffic import bootstrap, kinds, raw, sim


def pending_leads(now: datetime, count: int) -> list[tuple[str, bytes | None, bytes]]:
    """Leads that reach mql now under a 10.8-second wall-clock policy, never answered."""
    out = []
    for i in range(count):
        lead = f"pending-{i}"
        for n, (event_type, extra) in enumerate(
            [("lead.created", {"source": "instant"}), ("lead.mql", {"score": 10})]
        ):
            body = {
                "event_id": f"{lead}-{n}",
                "event_type": event_type,
                "lead_id": lead,
                "occurred_at": (now - timedelta(seconds=1 - n)).isoformat(),
                **extra,
            }
            out.append(("marketing-leads", lead.encode(), json.dumps(body).encode()))
    return out


@pytest.mark.slow
def test_a_two_calendar_policy_file_gives_the_pure_folds_rows_and_breaches_on_time(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY_FILE)
    reasons = frozenset({"not_now", "nurture", "no_budget", "timing"})
    config = FoldConfig(86_400.0, reasons, load_policies(path))
    now = datetime.now(UTC)
    messages = sim(400, seed=19, now=now)
    extra = pending_leads(now, 5)
    everything = [*kinds(messages), *(("marketing", value) for _, _, value in extra)]
    worker = start_worker(database_url, LEADFLOW_SLA_POLICIES=str(path))
    publish_positions(bootstrap(broker), [*raw(messages), *extra])
    wait_store(database_url, expected_of(everything, now, config), timeout=120, workers=[worker])
    # Right after the MQL the five instant SLAs are pending; the clock breaches them unasked.
    deadline = now + timedelta(hours=0.003)
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 4.0)
    last: AssertionError | None = None
    for _ in range(20):
        expected = expected_of(everything, datetime.now(UTC), config)
        try:
            assert_store_equals(database_url, expected)
            break
        except AssertionError as error:  # a business-time deadline may pass between reads
            last = error
            time.sleep(0.5)
    else:
        raise AssertionError(f"the store never equalled the pure fold: {last}")
    policies = {row["policy"] for snap in expected.leads.values() for row in snap.sla}
    assert {"instant", "hot", "americas", "default"} <= policies
    instant = [expected.leads[f"pending-{i}"].sla[0] for i in range(5)]
    assert {row["status"] for row in instant} == {"breached"}
