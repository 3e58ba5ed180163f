"""Issue #5, limits: oversized messages, extreme values, a lead with 10,000 events."""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadflow.agents.codec import COMPRESS_ABOVE, STATE_LIMIT, encode_state
from leadflow.agents.facts import Fact, to_micros
from leadflow.agents.fold import LeadFold, header_of
from leadflow.agents.partitioning import partition_of
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent
from leadflow.sinks import make_engine
from tests.support.faults import (
    CONFIG,
    TOPIC_OF,
    assert_store_equals,
    expected_of,
    metric,
    publish_positions,
    wait_for,
    wait_store,
)
from tests.support.fixtures import WorkerFactory
from tests.support.queries import table_rows

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
    assert expected.leads["HOT"].lifecycle["event_count"] == 10_000  # the default cap
    facts = [
        Fact(to_micros(start) + n * 1_000_000, 1, f"HOT-{n}", None, "cmp-1") for n in range(10_000)
    ]
    lead = LeadFold("HOT", CONFIG, facts)
    size = len(encode_state(header_of(lead.snapshot(now)), lead.facts))
    print(
        f"\n10,000 events of one lead (shuffled): stored in {took:.1f}s; "
        f"state {size / 1024:.0f} KiB"
    )
    assert size <= STATE_LIMIT, "the state must fit a default Kafka record (1 MiB)"


def _key_elsewhere(lead: str, partitions: int = 8) -> bytes:
    """A message key that the default partitioner puts on another partition than ``lead``."""
    return next(
        key
        for n in range(100)
        if partition_of(key := f"elsewhere-{n}", partitions) != partition_of(lead, partitions)
    ).encode()


def test_events_past_a_leads_cap_are_dead_lettered_and_the_rest_is_exact(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    start = now - timedelta(days=10)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    bootstrap = broker.url.removeprefix("kafka://")
    cap = 100
    worker = start_worker(url, LEADFLOW_MAX_EVENTS_PER_LEAD=str(cap))

    def touch(n: int) -> bytes:
        return event("lead.touch", "CAP", n, start + timedelta(seconds=n), campaign_id="c")

    first = [("marketing", event("lead.created", "CAP", 0, start, source="ads"))]
    first += [("marketing", touch(n)) for n in range(1, cap)]
    other = [("marketing", event("lead.created", "OTHER", n, start, source="s")) for n in (1, 2)]
    publish_positions(bootstrap, [(TOPIC_OF[k], b"CAP", v) for k, v in first + other])
    expected = expected_of(first + other, now)
    wait_store(url, expected, timeout=60, workers=[worker])

    # Past the cap: new events by the lead's key (folded where they arrive) and by another
    # key (forwarded to the lead's partition first), duplicates of kept events, another lead.
    local = [("marketing", touch(n)) for n in range(cap, cap + 20)]
    forwarded = [("marketing", touch(n)) for n in range(cap + 20, cap + 30)]
    repeats = first[:10]
    more = [("marketing", event("lead.touch", "OTHER", 3, start, campaign_id="c"))]
    publish_positions(
        bootstrap,
        [(TOPIC_OF[k], b"CAP", v) for k, v in local + repeats + more]
        + [(TOPIC_OF[k], _key_elsewhere("CAP"), v) for k, v in forwarded],
    )
    expected = expected_of(first + other + repeats + more, now)
    expected.invalid = 30
    wait_store(url, expected, timeout=60, workers=[worker])
    assert_store_equals(url, expected)
    engine = make_engine(url)
    letters = table_rows(engine, "dead_letters")
    engine.dispose()
    assert {letter["reason"] for letter in letters} == {"invalid_event"}
    assert all(f"already has {cap} events" in letter["error"] for letter in letters)
    assert {letter["topic"] for letter in letters} == {TOPIC_OF["marketing"]}
    refused = sorted(json.loads(letter["payload"])["event_id"] for letter in letters)
    assert refused == sorted(f"CAP-{n}" for n in range(cap, cap + 30))
    # Each refused message once, at the partition and offset it was published at (the
    # forwarded ones too), so a replay cannot count it twice.
    assert len({(x["topic"], x["partition"], x["offset"]) for x in letters}) == 30
    assert metric(worker, "leadflow_dead_letters_total") == 30


def test_a_lead_at_the_cap_with_the_longest_ids_comes_back_from_the_changelog(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    """Compressed table values (format 1) are recovered after a restart: the restarted worker
    still knows the lead holds its cap (new events refused) and every id (repeats ignored)."""
    now = datetime.now(UTC)
    start = now - timedelta(days=10)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    bootstrap = broker.url.removeprefix("kafka://")
    rng = random.Random(75)
    lead = "".join(rng.choice(string.ascii_letters) for _ in range(128))
    cap = 1000

    def long_event(n: int) -> bytes:
        body = {
            "event_id": f"{n:06d}" + "".join(rng.choice(string.ascii_letters) for _ in range(122)),
            "event_type": "lead.touch" if n else "lead.created",
            "lead_id": lead,
            "occurred_at": (start + timedelta(seconds=n)).isoformat(),
            "campaign_id": "".join(rng.choice(string.ascii_letters) for _ in range(256)),
            **({} if n else {"source": "s" * 256}),
        }
        return json.dumps(body).encode()

    kept = [("marketing", long_event(n)) for n in range(cap)]
    random.Random(76).shuffle(kept)
    worker = start_worker(url, LEADFLOW_MAX_EVENTS_PER_LEAD=str(cap))
    publish_positions(bootstrap, [(TOPIC_OF[k], lead.encode(), v) for k, v in kept])
    expected = expected_of(kept, now)
    wait_store(url, expected, timeout=90, workers=[worker])
    worker.stop()

    restarted = start_worker(url, LEADFLOW_MAX_EVENTS_PER_LEAD=str(cap))
    late = [("marketing", long_event(n)) for n in range(cap, cap + 5)]
    publish_positions(bootstrap, [(TOPIC_OF[k], lead.encode(), v) for k, v in kept[:5] + late])
    expected = expected_of(kept, now)
    expected.invalid = len(late)
    wait_store(url, expected, timeout=90, workers=[restarted])
    assert_store_equals(url, expected)
    wait_for(
        "the repeats counted as duplicates",
        lambda: metric(restarted, "leadflow_events_total") >= 10,
        timeout=10,
    )
    facts = [
        Fact.from_event(e)
        for _, v in kept
        if isinstance(e := classify(v, "marketing", now), BaseEvent)
    ]
    assert len(facts) == cap
    folded = LeadFold(lead, CONFIG, facts)
    size = len(encode_state(header_of(folded.snapshot(now)), folded.facts))
    assert COMPRESS_ABOVE < size <= STATE_LIMIT
    print(f"\n{cap} events with the longest ids: state {size / 1024:.0f} KiB, restored")
