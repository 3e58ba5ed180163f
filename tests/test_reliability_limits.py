"""Issue #5, limits: oversized messages, extreme values, a lead with 10,000 events."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.codec import encode_state
from agents.facts import Fact, to_micros
from agents.fold import LeadFold, header_of
from pipeline.broker import EmbeddedBroker
from sinks import make_engine
from sinks.queries import table_rows
from tests.conftest import WorkerFactory
from tests.faults import (
    CONFIG,
    TOPIC_OF,
    assert_store_equals,
    expected_of,
    publish_positions,
    wait_store,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def event(event_type: str, lead: str, n: int, at: datetime, **fields: object) -> bytes:
    body = {
        "event_id": f"{lead}-{n}",
        "event_type": event_type,
        "lead_id": lead,
        "occurred_at": at.isoformat(),
        **fields,
    }
    return json.dumps(body).encode()


def test_a_message_over_1_mib_is_dead_lettered_and_the_worker_goes_on(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    at = now - timedelta(days=3)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    big = event("lead.created", "BIG", 1, at, source="x", padding="p" * (1024 * 1024 + 10))
    just_under = event("lead.created", "OK", 1, at, source="x", padding="p" * 1_000_000)
    sent = [
        ("marketing", big),
        ("marketing", just_under),
        ("marketing", event("lead.touch", "OK", 2, at, campaign_id="c")),
    ]
    worker = start_worker(url)
    publish_positions(
        broker.url.removeprefix("kafka://"), [(TOPIC_OF[k], None, v) for k, v in sent]
    )
    expected = expected_of(sent, now)
    assert expected.invalid == 1
    wait_store(url, expected, timeout=60, workers=[worker])
    assert_store_equals(url, expected)
    engine = make_engine(url)
    (letter,) = table_rows(engine, "dead_letters")
    engine.dispose()
    assert letter["reason"] == "invalid_event" and "over the 1048576-byte limit" in letter["error"]
    assert len(letter["payload"]) == 64 * 1024


def test_values_at_the_edge_of_the_schema_are_stored_not_fatal(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory
) -> None:
    """Valid by the event schema, so they must be folded; the store must not refuse them."""
    now = datetime.now(UTC)
    at = now - timedelta(days=3)
    top = "9999999999999.99"  # max_digits=15, decimal_places=2
    sent: list[tuple[str, bytes]] = []
    for lead in ("W1", "W2"):  # two wins in one revenue_daily group: the sum has 19 digits
        sent.append(("marketing", event("lead.created", lead, 1, at, source="s")))
        money = {"opportunity_id": "o", "amount": top, "currency": "EUR"}
        sent.append(("sales", event("opportunity.created", lead, 2, at, **money)))
        sent.append(("sales", event("deal.won", lead, 3, at, **money)))
    sent.append(("marketing", event("lead.scored", "S1", 1, at, score=2**31)))
    sent.append(("marketing", event("lead.scored", "S2", 1, at, score=2**63)))
    sent.append(("marketing", event("lead.touch", "T", 1, at, campaign_id="after")))
    expected = expected_of(sent, now)
    worker = start_worker(database_url)
    publish_positions(
        broker.url.removeprefix("kafka://"), [(TOPIC_OF[k], k.encode(), v) for k, v in sent]
    )
    wait_store(database_url, expected, timeout=30, workers=[worker])
    assert_store_equals(database_url, expected)


def test_a_lead_with_10000_events_folds_in_bounded_time(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    start = now - timedelta(days=30)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    sent = [("marketing", event("lead.created", "HOT", 0, start, source="paid_search"))]
    for n in range(1, 10_000):
        at = start + timedelta(seconds=n)
        sent.append(("marketing", event("lead.touch", "HOT", n, at, campaign_id="cmp-1")))
    random.Random(74).shuffle(sent)  # arrival order unrelated to event time
    expected = expected_of(sent, now)
    worker = start_worker(url)
    publish_positions(
        broker.url.removeprefix("kafka://"), [(TOPIC_OF[k], b"HOT", v) for k, v in sent]
    )
    took = wait_store(url, expected, timeout=120, workers=[worker])
    assert_store_equals(url, expected)
    facts = [
        Fact(to_micros(start) + n * 1_000_000, 1, f"HOT-{n}", None, "cmp-1") for n in range(10_000)
    ]
    lead = LeadFold("HOT", CONFIG, facts)
    size = len(encode_state(header_of(lead.snapshot(now)), lead.facts))
    print(
        f"\n10,000 events of one lead (shuffled): stored in {took:.1f}s; "
        f"state {size / 1024:.0f} KiB"
    )
    assert size < 1024 * 1024, "the state must fit a default Kafka record (1 MiB)"
