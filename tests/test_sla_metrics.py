"""SLA metrics by policy: outcomes and business-time speed to lead, counted once per cycle."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from leadflow.agents.fold import FoldConfig
from leadflow.agents.metrics import Metrics
from leadflow.agents.partitioning import partition_of
from leadflow.agents.processor import Incoming, LeadProcessor
from leadflow.agents.sla.model import PolicySet
from leadflow.agents.sla.policies import parse_policies
from tests.support.processors import NAMES, PARTITIONS, Sink

# Monday 2026-06-01: the office opens 09:00-17:00 Paris time (07:00-15:00 UTC).
POLICIES = """
calendars:
  paris:
    timezone: Europe/Paris
    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"]}
policies:
  - name: hot
    when: {min_score: 50}
    target_hours: 1
    calendar: paris
  - name: cold
    target_hours: 1
"""


def event(lead: str, n: int, event_type: str, at: str, **extra: Any) -> Incoming:
    sales = event_type == "lead.contacted"
    topic = NAMES.sales if sales else NAMES.marketing
    body = {"event_id": f"{lead}-{n}", "event_type": event_type, "lead_id": lead,
            "occurred_at": at, **extra}  # fmt: skip
    return Incoming(topic, partition_of(lead, PARTITIONS), n, json.dumps(body).encode())


def lead_events(lead: str, score: int, mql_at: str, contacted_at: str) -> list[Incoming]:
    return [
        event(lead, 0, "lead.created", "2026-06-01T05:00:00Z", source="web"),
        event(lead, 1, "lead.mql", mql_at, score=score),
        event(lead, 2, "lead.contacted", contacted_at, owner_id="sdr-1"),
    ]


def metrics_after(batches: list[list[Incoming]], policies: PolicySet | None) -> Metrics:
    metrics = Metrics.create()

    async def send(topic: str, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def body() -> None:
        lead = LeadProcessor(
            names=NAMES,
            partitions=PARTITIONS,
            partition_counts={NAMES.marketing: PARTITIONS, NAMES.sales: PARTITIONS},
            config=FoldConfig(3600.0, frozenset(), policies),
            table={},
            sink=Sink(),
            send=send,
            metrics=metrics,
        )
        for batch in batches:
            await (await lead.handle_input(batch))
        lead.close()

    asyncio.run(asyncio.wait_for(body(), timeout=20))
    return metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_outcomes_and_business_seconds_are_labelled_by_policy() -> None:
    policies = parse_policies(POLICIES)
    # hot-a: MQL 06:30 UTC (closed), answered 07:30 UTC: 30 business minutes, met.
    # hot-b: MQL 14:30 UTC, answered 07:30 UTC the next day: 30 minutes on Monday and 30 on
    # Tuesday, one business hour, at the deadline: met.
    # cold: MQL 10:00, answered 12:00 UTC on the wall clock: breached after 2 hours.
    batches = [
        lead_events("hot-a", 80, "2026-06-01T06:30:00Z", "2026-06-01T07:30:00Z"),
        lead_events("hot-b", 80, "2026-06-01T14:30:00Z", "2026-06-02T07:30:00Z"),
        lead_events("cold", 10, "2026-06-01T10:00:00Z", "2026-06-01T12:00:00Z"),
    ]
    metrics = metrics_after(batches, policies)
    outcomes = "leadflow_sla_outcomes_total"
    assert sample(metrics, outcomes, policy="hot", outcome="met") == 2
    assert sample(metrics, outcomes, policy="hot", outcome="breached") == 0
    assert sample(metrics, outcomes, policy="cold", outcome="breached") == 1
    business = "leadflow_speed_to_lead_business_seconds"
    assert sample(metrics, f"{business}_count", policy="hot") == 2
    assert sample(metrics, f"{business}_sum", policy="hot") == 1800 + 3600
    assert sample(metrics, f"{business}_sum", policy="cold") == 7200
    # The wall clock sees hot-b's 17 hours.
    wall = sample(metrics, "leadflow_speed_to_lead_seconds_sum")
    assert wall == 3600 + 17 * 3600 + 7200


def test_without_a_policy_file_the_policy_label_is_single_clock() -> None:
    batches = [lead_events("a", 10, "2026-06-01T10:00:00Z", "2026-06-01T10:30:00Z")]
    metrics = metrics_after(batches, None)
    labels = {"policy": "single_clock", "outcome": "met"}
    assert sample(metrics, "leadflow_sla_outcomes_total", **labels) == 1
    business = "leadflow_speed_to_lead_business_seconds_sum"
    assert sample(metrics, business, policy="single_clock") == 1800


def test_a_late_event_that_restates_a_cycle_counts_its_outcome_once() -> None:
    first = lead_events("a", 10, "2026-06-01T10:00:00Z", "2026-06-01T10:30:00Z")
    late = [event("a", 3, "lead.touch", "2026-06-01T04:00:00Z", campaign_id="C-1")]
    metrics = metrics_after([first, late], None)
    labels = {"policy": "single_clock", "outcome": "met"}
    assert sample(metrics, "leadflow_sla_outcomes_total", **labels) == 1
