"""Conflicting duplicates end to end (contract section 2): two workers, random producer keys,
so copies of one event_id come in on different partitions and reach the lead's owner through
the re-keyed topic in any order. The store equals the pure fold (the copy whose canonical JSON
sorts first wins) and every losing copy is a conflicting_duplicate dead letter."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.publish.simulate import SimMessage
from leadflow.sinks import make_engine
from tests.support.faults import assert_store_equals, expected_of, publish_positions, wait_store
from tests.support.fixtures import WorkerFactory
from tests.support.traffic import bootstrap, kinds, raw, sim

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.postgres]

CONFLICTS = 40


def conflicting_copy(message: SimMessage, rng: random.Random, leads: list[str]) -> SimMessage:
    """Another copy of the message's event: other source_system, sometimes another time, and
    one time in three another lead (one of ``leads``), which then loses or wins the event."""
    value = json.loads(message.value)
    value["source_system"] = rng.choice(["aa-copy", "zz-copy"])
    if rng.random() < 0.5:
        moment = datetime.fromisoformat(value["occurred_at"]) + timedelta(seconds=1)
        value["occurred_at"] = moment.isoformat()
    if rng.random() < 1 / 3:
        value["lead_id"] = rng.choice([lead for lead in leads if lead != value["lead_id"]])
    return SimMessage(
        message.topic_kind, rng.randbytes(8), json.dumps(value).encode(), value["lead_id"], True
    )


def with_conflicts(messages: list[SimMessage], seed: int) -> list[SimMessage]:
    """The messages plus one conflicting copy each of ``CONFLICTS`` events sent once, each
    copy before or after its original."""
    rng = random.Random(seed)
    sent = Counter(json.loads(m.value)["event_id"] for m in messages if m.valid)
    once = [m for m in messages if m.valid and sent[json.loads(m.value)["event_id"]] == 1]
    leads = sorted({m.lead_id for m in messages if m.lead_id})
    out = list(messages)
    for original in rng.sample(once, CONFLICTS):
        out.insert(rng.randrange(len(out) + 1), conflicting_copy(original, rng, leads))
    return out


def other_leads(messages: list[SimMessage]) -> int:
    """How many events were sent for more than one lead."""
    leads: dict[str, set[str]] = {}
    for message in messages:
        if message.valid:
            value = json.loads(message.value)
            leads.setdefault(value["event_id"], set()).add(value["lead_id"])
    return sum(len(sent) > 1 for sent in leads.values())


def recorded_losses(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM lead_retractions")).scalar_one())
    finally:
        engine.dispose()


def letters_by_reason(url: str) -> Counter[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT reason, count(*) FROM dead_letters GROUP BY reason"))
            return Counter({reason: int(n) for reason, n in rows})
    finally:
        engine.dispose()


@pytest.mark.parametrize("seed", [5, 6])
def test_two_workers_keep_the_winning_copies_whatever_the_order(
    broker: EmbeddedBroker, pg_schema_url: str, start_worker: WorkerFactory, seed: int
) -> None:
    now = datetime.now(UTC)
    plain = sim(150, seed=seed, now=now, key_mode="random")
    messages = with_conflicts(plain, seed)
    workers = [start_worker(pg_schema_url) for _ in range(2)]
    publish_positions(bootstrap(broker), raw(messages))
    expected = expected_of(kinds(messages), now)
    assert expected.invalid - expected_of(kinds(plain), now).invalid == CONFLICTS
    shared = other_leads(messages)
    assert shared > 5, "copies of some events went to another lead"
    wait_store(pg_schema_url, expected, timeout=150, workers=workers, retracted=shared)
    assert recorded_losses(pg_schema_url) == shared, "one loss per event sent for two leads"
    assert_store_equals(pg_schema_url, expected)
    assert letters_by_reason(pg_schema_url)["conflicting_duplicate"] == CONFLICTS
