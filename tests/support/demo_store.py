"""The demo's store without Kafka: the simulated traffic folded purely, written by SqlSink."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig, fold
from leadflow.pipeline.publish.simulate import simulate, valid_events
from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent
from leadflow.sinks import SqlSink, make_engine, upgrade

# The demo's defaults: 5,000 leads, seed 1, SLA 24 h, the contract's recycle reasons.
DEMO_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CONFIG = FoldConfig(24 * 3600.0, frozenset({"not_now", "nurture", "no_budget", "timing"}))


def write_demo_store(url: str, leads: int = 5000, seed: int = 1) -> None:
    """Migrate ``url`` and write the folded leads of the demo's simulated traffic into it."""
    upgrade(url)
    facts: dict[str, list[Fact]] = defaultdict(list)
    for message in valid_events(simulate(leads, seed, DEMO_NOW)):
        event = classify(message.value, message.topic_kind, DEMO_NOW)
        if isinstance(event, BaseEvent):
            facts[event.lead_id].append(Fact.from_event(event))
    snapshots = [fold(lead, lead_facts, CONFIG, DEMO_NOW) for lead, lead_facts in facts.items()]
    engine = make_engine(url)
    try:
        sink = SqlSink(engine)
        for start in range(0, len(snapshots), 1000):
            sink.write_batch(snapshots[start : start + 1000], [], DEMO_NOW)
    finally:
        engine.dispose()
