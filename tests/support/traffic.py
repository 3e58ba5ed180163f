"""Traffic for end-to-end tests: scenario and simulated messages, publishing, topic set-up."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.kafka.producer import Publisher
from leadflow.pipeline.publish.simulate import SimMessage, simulate
from tests.support.faults import (
    TOPIC_OF,
)
from tests.support.fixtures import settings_for
from tests.support.golden import load_scenarios

SCENARIOS = load_scenarios()
SCENARIO_MESSAGES = sum(len(s.published) for s in SCENARIOS)


def publish(
    broker: EmbeddedBroker,
    database_url: str,
    messages: list[tuple[str, bytes | None, bytes]],
) -> None:
    with Publisher(settings_for(broker, database_url)) as publisher:
        publisher.send_all(messages)


def scenario_messages(
    key_mode: str = "lead_id", seed: int = 0
) -> list[tuple[str, bytes | None, bytes]]:
    rng = random.Random(seed)
    out: list[tuple[str, bytes | None, bytes]] = []
    for scenario in SCENARIOS:
        for message in scenario.published:
            value = message["value"]
            key = {
                "lead_id": value["lead_id"].encode(),
                "none": None,
                "random": rng.randbytes(8),
            }[key_mode]
            out.append((message["topic"], key, json.dumps(value).encode()))
    return out


BAD = [
    ("marketing", b'{"event_id": "x"', "invalid_json"),
    (
        "marketing",
        b'{"event_id": "b1", "event_type": "lead.created", "lead_id": "B",'
        b' "occurred_at": "2026-01-01T00:00:00"}',
        "invalid_event",
    ),
    (
        "sales",
        b'{"event_id": "b2", "event_type": "lead.teleported", "lead_id": "B",'
        b' "occurred_at": "2026-01-01T00:00:00Z"}',
        "unknown_event_type",
    ),
    (
        "marketing",
        b'{"event_id": "b3", "event_type": "deal.lost", "lead_id": "B",'
        b' "occurred_at": "2026-01-01T00:00:00Z", "opportunity_id": "O"}',
        "wrong_topic",
    ),
    (
        "marketing",
        b'{"event_id": "b4", "event_type": "lead.scored", "lead_id": "B",'
        b' "occurred_at": "2026-01-01T00:00:00Z", "score": 3, "schema_version": 2}',
        "unsupported_schema_version",
    ),
    (
        "sales",
        b'{"event_id": "b5", "event_type": "lead.assigned", "lead_id": "B",'
        b' "occurred_at": "1990-01-01T00:00:00Z", "owner_id": "r"}',
        "timestamp_out_of_range",
    ),
]


def sim(leads: int, seed: int, now: datetime, key_mode: str = "random") -> list[SimMessage]:
    # Three days old: no SLA is still pending, so the result cannot depend on when it is read.
    return simulate(leads, seed=seed, start=now - timedelta(days=3), key_mode=key_mode)


def raw(messages: list[SimMessage]) -> list[tuple[str, bytes | None, bytes]]:
    return [(TOPIC_OF[m.topic_kind], m.key, m.value) for m in messages]


def kinds(messages: list[SimMessage]) -> list[tuple[str, bytes | None]]:
    return [(m.topic_kind, m.value) for m in messages]


def bootstrap(broker: EmbeddedBroker) -> str:
    return broker.url.removeprefix("kafka://")
